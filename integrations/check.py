#!/usr/bin/env python3
"""Checks the ready packs under integrations/ against chatgate's OpenAPI
document (3.1, 3.0 or Swagger 2.0, a file), so that a pack cannot call an
operation the gateway does not have or send a field it would refuse.

    python3 integrations/check.py DOC          # exit 1 on any mismatch
    python3 integrations/check.py --self-test DOC

For every HTTP call a pack makes -- a Genesys Cloud data action's
`requestUrlTemplate` and `requestType`, a Twilio Studio `make-http-request`
widget's `url` and `method`, an operation of the Copilot Studio connector --
it checks that:

  - the path (after its placeholders are taken as path parameters, its
    scheme and host or leading base-URL placeholder dropped) and the method
    name an operation of the document; a placeholder never stands for a
    literal segment, and a query parameter is one the operation defines;
  - every member of the JSON body it sends is a member of that operation's
    request body schema (`$ref`s resolved; the members of all alternatives of
    a `oneOf`/`anyOf`), recursively for nested objects; the members every
    alternative requires are present; a literal value is one the member's
    schema allows (enum, const, type), and a placeholder inside quotes goes to
    a string member (a bare one may be of any type); a call without a body goes to an operation whose body is
    optional;
  - the connector's operations have the document's operationId, path and
    method, its parameters are the operation's, the members of its body
    definitions are the document's, and every `$ref` in it resolves.

--self-test checks the packs as they are (no problem expected), then
mutates them in memory one way at a time (a renamed body field, a wrong
path, a wrong method, a literal outside its enum, a connector operation
renamed) and fails unless each mutation is reported.
Python 3 standard library only.
"""

import copy
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# Placeholders of the packs' template languages: Velocity (Genesys:
# $!{input.x}, ${x}, $input.x, $esc.jsonString($input.x)), Liquid (Twilio:
# {{flow.variables.x | filter}}), and OpenAPI path templates ({id}).
PLACEHOLDER = re.compile(
    r"\$esc\.\w+\((?:[^()]|\([^()]*\))*\)"  # $esc.jsonString($input.x)
    r"|\$!?\{[^{}]*\}"  # $!{input.x}, ${x}
    r"|\$!?[A-Za-z_][\w.]*"  # $input.x
    r"|\{\{.*?\}\}"  # {{ liquid }}
    r"|\{[A-Za-z_][\w.-]*\}"  # {id}
)
# Velocity directives: #if(...) and #elseif(...) kept as if every branch
# were taken (all the members any branch sends are checked).
DIRECTIVE = re.compile(r"#(?:if|elseif)\((?:[^()]|\([^()]*\))*\)|#else\b|#end\b")
TOKEN = "\u2063PLACEHOLDER\u2063"  # a placeholder in a string: a string
ANY = "\u2063ANY\u2063"  # a bare placeholder: a value of any type


class Doc:
    """The operations of an OpenAPI 3.x or Swagger 2.0 document."""

    def __init__(self, doc):
        self.doc = doc
        self.v2 = doc.get("swagger") == "2.0"
        if not self.v2 and not str(doc.get("openapi", "")).startswith("3."):
            raise ValueError("neither an OpenAPI 3.x nor a Swagger 2.0 document")
        self.ops = []  # (method, path, segments, operation, path-level parameters)
        for path, item in doc.get("paths", {}).items():
            for method in METHODS:
                if isinstance(item.get(method), dict):
                    self.ops.append((method, path, split_path(path), item[method], item.get("parameters", [])))

    def resolve(self, node, seen=()):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise KeyError(f"cannot resolve {ref}")
            seen = (*seen, ref)
            target = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            # A sibling of $ref (x-nullable, description) is kept beside it.
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **extra} if extra else target
        return node

    def find(self, method, segments):
        """The operation for `method` and a pack's path segments (None for a
        placeholder), and the reason when there is none."""
        same_path = []
        for m, path, tmpl, op, common in self.ops:
            if len(tmpl) != len(segments):
                continue
            if all((t is None) if s is None else (t is None or t == s) for t, s in zip(tmpl, segments)):
                same_path.append((m, path, op, common))
        for m, path, op, common in same_path:
            if m == method:
                return path, op, common, None
        if same_path:
            allowed = ", ".join(sorted({m.upper() for m, *_ in same_path}))
            return None, None, None, f"the path {same_path[0][1]} has no {method.upper()} (it has {allowed})"
        return None, None, None, "no operation of the document has this path"

    def parameters(self, op, common):
        params = {}
        for p in [*common, *op.get("parameters", [])]:
            p = self.resolve(p)
            params[(p.get("in"), p.get("name"))] = p
        return params

    def body(self, op, common):
        """(schema or None, required)."""
        if self.v2:
            for p in self.parameters(op, common).values():
                if p.get("in") == "body":
                    return p.get("schema"), bool(p.get("required"))
            return None, False
        rb = op.get("requestBody")
        if not rb:
            return None, False
        rb = self.resolve(rb)
        content = rb.get("content", {})
        media = next((c for c in content if c.split(";")[0].strip() == "application/json"), None)
        if media is None:
            return None, bool(rb.get("required"))
        return content[media].get("schema"), bool(rb.get("required"))

    def members(self, schema):
        """(members: name -> [schemas], required in every alternative) of an
        object schema, through $ref, allOf, oneOf and anyOf."""
        schema = self.resolve(schema)
        members, required = {}, None
        for k, v in schema.get("properties", {}).items():
            members.setdefault(k, []).append(v)
        own_required = set(schema.get("required", []))
        for part in schema.get("allOf", []):
            m, r = self.members(part)
            for k, v in m.items():
                members.setdefault(k, []).extend(v)
            own_required |= r
        alternatives = [*schema.get("oneOf", []), *schema.get("anyOf", [])]
        alt_required = None
        for part in alternatives:
            if self.resolve(part).get("type") == "null":
                continue
            m, r = self.members(part)
            for k, v in m.items():
                members.setdefault(k, []).extend(v)
            alt_required = r if alt_required is None else alt_required & r
        required = own_required | (alt_required or set())
        return members, required

    def accepts(self, schema, value, placeholder):
        """Whether `schema` allows `value` (a placeholder string: any string)."""
        schema = self.resolve(schema)
        alts = [*schema.get("oneOf", []), *schema.get("anyOf", [])]
        if alts and not any(self.accepts(a, value, placeholder) for a in alts):
            return False
        if not all(self.accepts(a, value, placeholder) for a in schema.get("allOf", [])):
            return False
        nullable = schema.get("nullable") or schema.get("x-nullable")
        if value is None:
            t = schema.get("type")
            return bool(nullable) or t == "null" or (isinstance(t, list) and "null" in t) or (
                "enum" in schema and None in schema["enum"]
            ) or (t is None and "enum" not in schema and "const" not in schema and not alts)
        types = schema.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        kind = (
            "boolean" if isinstance(value, bool) else
            "integer" if isinstance(value, int) else
            "number" if isinstance(value, float) else
            "string" if isinstance(value, str) else
            "object" if isinstance(value, dict) else
            "array" if isinstance(value, list) else "?"
        )
        if types and kind not in types and not (kind == "integer" and "number" in types):
            return False
        if placeholder:
            return True
        if "enum" in schema and value not in schema["enum"]:
            return False
        if "const" in schema and value != schema["const"]:
            return False
        return True


def split_path(path):
    """Segments of a path; None for a segment that is (or holds) a placeholder."""
    segs = []
    for s in path.strip("/").split("/"):
        segs.append(None if (TOKEN in s or PLACEHOLDER.search(s)) else s)
    return segs


def url_path(url):
    """(path with placeholders as TOKEN, query parameter names) of a pack's
    URL: its scheme and host, or a leading base-URL placeholder, dropped."""
    u = PLACEHOLDER.sub(lambda m: TOKEN, url)
    u = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*", "", u)
    if u.startswith(TOKEN):
        u = u[len(TOKEN):]
    path, _, query = u.partition("?")
    names = [q.split("=", 1)[0] for q in query.split("&") if q]
    return path, names


def parse_body(text):
    """The JSON a body template sends, placeholders as TOKEN strings."""
    text = DIRECTIVE.sub("", text)
    out, i = [], 0
    for m in PLACEHOLDER.finditer(text):
        out.append(text[i:m.start()])
        # Inside a string the placeholder stays a string; bare, its value's
        # type is unknown.
        quotes = len(re.findall(r'(?<!\\)"', text[:m.start()]))
        out.append(TOKEN if quotes % 2 == 1 else json.dumps(ANY))
        i = m.end()
    out.append(text[i:])
    return json.loads("".join(out))


class Checker:
    def __init__(self, doc):
        self.doc = Doc(doc)
        self.calls = 0
        self.problems = []

    def problem(self, where, text):
        self.problems.append(f"{where}: {text}")

    # ---- one HTTP call --------------------------------------------------
    def call(self, where, method, url, body_text, has_body):
        """A call of `method` to `url` with `body_text` (a template, or
        None); has_body: whether the pack sends a body at all."""
        self.calls += 1
        method = (method or "").lower()
        if method not in METHODS:
            self.problem(where, f"method {method!r} is not an HTTP method")
            return
        path, query = url_path(url)
        if not path.startswith("/"):
            self.problem(where, f"URL {url!r} does not name a path of the gateway")
            return
        found, op, common, why = self.doc.find(method, split_path(path))
        if op is None:
            self.problem(where, f"{method.upper()} {path.replace(TOKEN, '{…}')}: {why}")
            return
        label = f"{method.upper()} {found} ({op.get('operationId', '?')})"
        params = self.doc.parameters(op, common)
        for name in query:
            if ("query", name) not in params:
                self.problem(where, f"{label}: query parameter {name!r} is not defined by the operation")
        schema, required = self.doc.body(op, common)
        if body_text is None or not has_body or (isinstance(body_text, str) and not body_text.strip()):
            if method in ("post", "put", "patch") and required:
                self.problem(where, f"{label}: sends no body, but the operation requires one")
            return
        if method in ("get", "head", "delete"):
            return
        try:
            body = parse_body(body_text) if isinstance(body_text, str) else body_text
        except json.JSONDecodeError as e:
            self.problem(where, f"{label}: the body template is not JSON once its placeholders are filled ({e})")
            return
        if schema is None:
            if body not in ({}, None):
                self.problem(where, f"{label}: sends a JSON body, but the operation takes none")
            return
        self.object(where, label, "body", body, schema)

    def object(self, where, label, at, value, schema):
        if not isinstance(value, dict):
            if not self.doc.accepts(schema, value, False):
                self.problem(where, f"{label}: {at} is not an object the operation accepts")
            return
        members, required = self.doc.members(schema)
        for name in sorted(required - set(value)):
            self.problem(where, f"{label}: {at} lacks the required member {name!r}")
        for name, v in value.items():
            if name not in members:
                known = ", ".join(sorted(members)) or "none"
                self.problem(where, f"{label}: {at} member {name!r} is not in the request body schema (members: {known})")
                continue
            schemas = members[name]
            if isinstance(v, dict):
                # Any alternative of the member that is an object.
                objs = [s for s in schemas if self.doc.members(s)[0] or self.doc.resolve(s).get("type") == "object"]
                if not objs:
                    self.problem(where, f"{label}: {at}.{name} is an object, the schema's member is not")
                    continue
                before = len(self.problems)
                self.object(where, label, f"{at}.{name}", v, {"anyOf": objs} if len(objs) > 1 else objs[0])
                if len(self.problems) > before:
                    continue
            elif v != ANY:
                ph = isinstance(v, str) and TOKEN in v
                if not any(self.doc.accepts(s, v, ph) for s in schemas):
                    shown = "a placeholder (a string)" if ph else json.dumps(v)
                    self.problem(where, f"{label}: {at}.{name} = {shown} is not a value the schema allows")

    # ---- the packs ------------------------------------------------------
    def genesys(self, name, action):
        where = f"genesys-cloud/{name}"
        for key in ("name", "integrationType", "actionType", "config", "contract"):
            if key not in action:
                self.problem(where, f"no {key!r}")
        if action.get("integrationType") != "custom-rest-actions":
            self.problem(where, "integrationType is not custom-rest-actions")
        inputs = action.get("contract", {}).get("input", {}).get("inputSchema", {})
        out = action.get("contract", {}).get("output", {}).get("successSchema", {})
        for what, schema in (("input", inputs), ("output", out)):
            for k, v in schema.get("properties", {}).items():
                if v.get("type") not in ("string", "boolean", "integer", "number"):
                    self.problem(where, f"{what} contract member {k!r} is not a flat scalar")
        req = action.get("config", {}).get("request", {})
        url, method, template = req.get("requestUrlTemplate", ""), req.get("requestType", ""), req.get("requestTemplate")
        names = set(inputs.get("properties", {}))
        for m in re.finditer(r"input\.(\w+)", json.dumps([url, template])):
            if m.group(1) not in names and m.group(1) != "rawRequest":
                self.problem(where, f"the request uses input.{m.group(1)}, which the input contract does not define")
        auth = {k.lower(): v for k, v in req.get("headers", {}).items()}.get("authorization", "")
        if not re.match(r"Bearer \$!?\{credentials\.\w+\}$", auth):
            self.problem(where, "the Authorization header is not `Bearer ` and a credential")
        if isinstance(template, str) and "rawRequest" in template:
            # The whole input goes as the body.
            body = {k: TOKEN for k in names} if method.upper() not in ("GET", "DELETE") else None
            self.call(where, method, url, body, body is not None)
        else:
            self.call(where, method, url, template, template is not None)

    def twilio(self, name, flow):
        where = f"twilio-studio/{name}"
        for key in ("description", "states", "initial_state"):
            if key not in flow:
                self.problem(where, f"no {key!r}")
        states = {s.get("name"): s for s in flow.get("states", [])}
        if flow.get("initial_state") not in states:
            self.problem(where, f"initial_state {flow.get('initial_state')!r} is not a state")
        for s in flow.get("states", []):
            for t in s.get("transitions", []):
                if t.get("next") and t["next"] not in states:
                    self.problem(where, f"state {s.get('name')}: transition to {t['next']!r}, which is not a state")
            if s.get("type") != "make-http-request":
                continue
            p = s.get("properties", {})
            w = f"{where} state {s.get('name')}"
            if p.get("parameters"):
                self.problem(w, "sends HTTP parameters; the gateway takes a JSON body only")
            if p.get("body") and not str(p.get("content_type", "")).startswith("application/json"):
                self.problem(w, "sends a body that is not declared application/json")
            self.call(w, p.get("method", "GET"), p.get("url", ""), p.get("body"), bool(p.get("body")))

    def copilot(self, name, api):
        where = f"copilot-studio/{name}"
        if api.get("swagger") != "2.0":
            self.problem(where, "not a Swagger 2.0 document")
        sec = api.get("securityDefinitions", {})
        if not any(s.get("type") == "apiKey" and s.get("in") == "header" and s.get("name") == "Authorization"
                   for s in sec.values()):
            self.problem(where, "no apiKey security definition for the Authorization header")
        own = Doc(api)
        for ref in set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(api))):
            try:
                own.resolve({"$ref": ref})
            except (KeyError, TypeError):
                self.problem(where, f"$ref {ref} does not resolve in the connector")
        by_id = {op.get("operationId"): (m, path, op, common) for m, path, _, op, common in self.doc.ops}
        for m, path, _, op, common in own.ops:
            self.calls += 1
            op_id = op.get("operationId")
            w = f"{where} {m.upper()} {path}"
            if op_id not in by_id:
                self.problem(w, f"operationId {op_id!r} is not in the document")
                continue
            dm, dpath, dop, dcommon = by_id[op_id]
            if (dm, dpath) != (m, path):
                self.problem(w, f"operationId {op_id!r} is {dm.upper()} {dpath} in the document")
                continue
            mine = own.parameters(op, common)
            theirs = self.doc.parameters(dop, dcommon)
            for key, p in mine.items():
                if key[0] == "body":
                    continue
                if key not in theirs:
                    self.problem(w, f"parameter {key[1]!r} in {key[0]} is not the operation's")
                elif bool(p.get("required")) != bool(theirs[key].get("required")):
                    self.problem(w, f"parameter {key[1]!r}: required differs from the document")
            for key, p in theirs.items():
                if key[0] == "path" and key not in mine:
                    self.problem(w, f"the path parameter {key[1]!r} is missing")
            schema, _ = own.body(op, common)
            dschema, drequired = self.doc.body(dop, dcommon)
            if schema is None:
                if drequired:
                    self.problem(w, "has no body parameter, but the operation requires a body")
                continue
            if dschema is None:
                self.problem(w, "has a body parameter, but the operation takes none")
                continue
            self.members_within(w, own, schema, dschema, "body")

    def members_within(self, where, own, schema, dschema, at, depth=0):
        """Every member of the connector's `schema` is one of the document's."""
        mine, _ = own.members(schema)
        theirs, _ = self.doc.members(dschema)
        for name, schemas in mine.items():
            if name not in theirs:
                self.problem(where, f"{at} member {name!r} is not in the document's request body schema")
            elif depth < 4:
                for s in schemas:
                    if own.members(s)[0]:
                        objs = [d for d in theirs[name] if self.doc.members(d)[0]]
                        if not objs:
                            self.problem(where, f"{at}.{name} is an object in the connector only")
                        else:
                            self.members_within(where, own, s, {"anyOf": objs}, f"{at}.{name}", depth + 1)


def load_packs():
    """{(kind, file name): parsed JSON} of every pack file."""
    packs = {}
    for kind, pattern in (("genesys", "genesys-cloud/*.json"), ("twilio", "twilio-studio/*.json"),
                          ("copilot", "copilot-studio/apiDefinition.swagger.json")):
        for f in sorted(HERE.glob(pattern)):
            packs[(kind, f.name)] = json.loads(f.read_text(encoding="utf-8"))
    return packs


def check(doc, packs):
    c = Checker(doc)
    kinds = {k for k, _ in packs}
    for kind in ("genesys", "twilio", "copilot"):
        if kind not in kinds:
            c.problem(kind, "no pack file found")
    for (kind, name), data in packs.items():
        getattr(c, kind)(name, data)
    return c


def mutations(packs):
    """(description, mutated packs) pairs, each of which must be caught."""

    def first(kind, name_part=""):
        return next(k for k in packs if k[0] == kind and name_part in k[1])

    def body_of(req):
        return req["requestTemplate"]

    out = []
    m = copy.deepcopy(packs)
    req = m[first("genesys", "check-code")]["config"]["request"]
    req["requestTemplate"] = body_of(req).replace('"code"', '"pin_code"')
    out.append(("a Genesys body field renamed (code -> pin_code)", m))

    m = copy.deepcopy(packs)
    req = m[first("genesys", "send-code")]["config"]["request"]
    req["requestType"] = "PUT"
    out.append(("a Genesys requestType the path does not serve (PUT)", m))

    m = copy.deepcopy(packs)
    flow = m[first("twilio")]
    http = next(s for s in flow["states"] if s["type"] == "make-http-request" and "/challenges" in s["properties"]["url"])
    http["properties"]["url"] = http["properties"]["url"].replace("/challenges", "/challenge", 1)
    out.append(("a Twilio URL with a wrong path segment (/challenge)", m))

    m = copy.deepcopy(packs)
    flow = m[first("twilio")]
    http = next(s for s in flow["states"] if s["type"] == "make-http-request" and '"method": "otp"' in s["properties"].get("body", ""))
    http["properties"]["body"] = http["properties"]["body"].replace('"method": "otp"', '"method": "fax"')
    out.append(("a Twilio body literal outside its enum (method fax)", m))

    m = copy.deepcopy(packs)
    flow = m[first("twilio")]
    http = next(s for s in flow["states"] if s["type"] == "make-http-request" and "conversation_id" in s["properties"].get("body", ""))
    http["properties"]["body"] = http["properties"]["body"].replace('"conversation_id"', '"conversation"')
    out.append(("a Twilio body without a required member (conversation_id)", m))

    m = copy.deepcopy(packs)
    api = m[first("copilot")]
    op = api["paths"]["/v1/interactions/{id}/challenges/{cid}/verify"]["post"]
    op["operationId"] = "verify"
    out.append(("a connector operationId renamed (verify_code -> verify)", m))

    m = copy.deepcopy(packs)
    api = m[first("copilot")]
    api["definitions"]["NewChallenge"]["properties"]["channel"] = {"type": "string"}
    out.append(("a connector body definition with a member the document lacks", m))
    return out


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    self_test = "--self-test" in argv
    if len(args) != 1 or any(a not in ("--self-test",) for a in argv if a.startswith("--")):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        doc = json.loads(pathlib.Path(args[0]).read_text(encoding="utf-8"))
        Doc(doc)
    except (OSError, ValueError) as e:
        print(f"packs: cannot read the document {args[0]}: {e}", file=sys.stderr)
        return 1
    packs = load_packs()
    c = check(doc, packs)
    for p in c.problems:
        print(f"packs: {p}", file=sys.stderr)
    print(f"packs: {c.calls} calls checked, {len(c.problems)} problems ({len(packs)} files, {args[0]})")
    if c.problems:
        return 1
    if not self_test:
        return 0
    missed = 0
    for what, mutated in mutations(packs):
        m = check(doc, mutated)
        if m.problems:
            print(f"self-test: caught {what}: {m.problems[0]}")
        else:
            print(f"self-test: NOT caught: {what}", file=sys.stderr)
            missed += 1
    if missed:
        print(f"self-test: FAILED: {missed} mutation(s) went unnoticed", file=sys.stderr)
        return 1
    print("self-test: every mutation was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
