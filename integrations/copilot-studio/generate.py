#!/usr/bin/env python3
"""Builds apiDefinition.swagger.json, the Power Platform custom connector's
definition, from chatgate's Swagger 2.0 document.

    curl -s 'https://chatgate.example.com/openapi.json?version=2.0' -o doc-2.0.json
    python3 generate.py doc-2.0.json [--host chatgate.example.com] [-o apiDefinition.swagger.json]

It keeps the bot's operations (their operationId, path, parameters and the
definitions they reference, as the document states them: a document of your
own gateway carries your channel names), puts a placeholder host, and
describes the key as Power Platform's `apiKey` header `Authorization`.
Python 3 standard library only.
"""

import argparse
import copy
import json
import pathlib
import sys

# The operations a bot built in Copilot Studio calls, in the order the
# connector lists them.
OPERATIONS = [
    "create_interaction",
    "list_interactions",
    "get_interaction",
    "issue_link",
    "start_challenge",
    "verify_code",
    "read_challenge",
    "logout_interaction",
]

# Power Platform shows `summary` as the action's name (at most 80
# characters, one line); the document's own summary opens the description.
SUMMARIES = {
    "create_interaction": "Create or find the interaction",
    "list_interactions": "Find an interaction by conversation (agent key)",
    "get_interaction": "Read an interaction",
    "issue_link": "Issue a login link",
    "start_challenge": "Start a challenge",
    "verify_code": "Check a code",
    "read_challenge": "Read a challenge",
    "logout_interaction": "Log out",
}

HOST = "chatgate.example.com"

# Shown in the connection dialog and the operation list.
TITLE = "chatgate"
DESCRIPTION = (
    "Authenticate the customer of a conversation: find the conversation's "
    "interaction, send a login link or a one-time code, check the code, "
    "read whether the customer is authenticated."
)


def refs_in(node):
    """Every `#/definitions/…` name referenced anywhere under `node`."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                yield v[len("#/definitions/"):]
            else:
                yield from refs_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs_in(v)


def build(doc, host=HOST):
    if doc.get("swagger") != "2.0":
        sys.exit("generate.py: the input is not a Swagger 2.0 document (fetch /openapi.json?version=2.0)")
    wanted = set(OPERATIONS)
    paths, found = {}, {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") in wanted:
                op = copy.deepcopy(op)
                # One answer per 2xx, and one for every refusal: the refusals
                # share the Problem body, the operation's 4xx/5xx texts stay
                # in the gateway's document.
                responses = {c: r for c, r in op.get("responses", {}).items() if c.startswith("2")}
                responses["default"] = {
                    "description": "A refusal (application/problem+json): `code` says which.",
                    "schema": {"$ref": "#/definitions/Problem"},
                }
                op["responses"] = responses
                op["security"] = [{"api_key": []}]
                own = " ".join(op.get("summary", "").split())
                op["description"] = "\n\n".join(t for t in (own, op.get("description", "")) if t)
                op["summary"] = SUMMARIES[op["operationId"]]
                paths.setdefault(path, {})[method] = op
                found[op["operationId"]] = (method, path)
    missing = [o for o in OPERATIONS if o not in found]
    if missing:
        sys.exit(f"generate.py: the document has no operation {', '.join(missing)}")

    # The definitions the kept operations reference, and theirs in turn.
    definitions, todo = {}, list(refs_in(paths))
    while todo:
        name = todo.pop()
        if name in definitions:
            continue
        if name not in doc.get("definitions", {}):
            sys.exit(f"generate.py: #/definitions/{name} is referenced but not defined")
        definitions[name] = doc["definitions"][name]
        todo.extend(refs_in(definitions[name]))

    ordered_paths = {}
    for op_id in OPERATIONS:
        method, path = found[op_id]
        ordered_paths.setdefault(path, {})[method] = paths[path][method]

    used_tags = {t for item in ordered_paths.values() for op in item.values() for t in op.get("tags", [])}
    return {
        "swagger": "2.0",
        "info": {
            "title": TITLE,
            "description": DESCRIPTION,
            "version": doc.get("info", {}).get("version", "1.0.0"),
            "contact": {"name": "chatgate"},
            "license": doc.get("info", {}).get("license", {"name": "Apache-2.0"}),
        },
        "host": host,
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "tags": [t for t in doc.get("tags", []) if t.get("name") in used_tags],
        "paths": ordered_paths,
        "definitions": {k: definitions[k] for k in sorted(definitions)},
        "parameters": {},
        "responses": {},
        "securityDefinitions": {
            "api_key": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Bearer ` and the bot's API key: type `Bearer cg_…` in the connection dialog.",
            }
        },
        "security": [{"api_key": []}],
        "x-ms-connector-metadata": [
            {"propertyName": "Website", "propertyValue": f"https://{host}/openapi.json?version=2.0"},
            {"propertyName": "Categories", "propertyValue": "Security;IT Operations"},
        ],
    }


def main():
    here = pathlib.Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("document", help="chatgate's Swagger 2.0 document (GET /openapi.json?version=2.0)")
    p.add_argument("--host", default=HOST, help=f"the gateway's host name (default {HOST}, a placeholder)")
    p.add_argument("-o", "--output", default=str(here / "apiDefinition.swagger.json"))
    args = p.parse_args()
    doc = json.loads(pathlib.Path(args.document).read_text(encoding="utf-8"))
    out = build(doc, args.host)
    pathlib.Path(args.output).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.output}: {sum(len(i) for i in out['paths'].values())} operations, "
          f"{len(out['definitions'])} definitions, host {args.host}")


if __name__ == "__main__":
    main()
