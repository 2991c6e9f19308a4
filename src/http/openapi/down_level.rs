//! The OpenAPI 3.0.3 and Swagger 2.0 documents
//! (docs/api.md#the-openapi-documents): derived from the one generated 3.1
//! document, so the three cannot drift. Bot platforms and client
//! generators read 3.0 or 2.0 and refuse what 3.1 added, so each keeps
//! every path, method and `operationId`, and says the rest in the older
//! words:
//!
//! - a nullable type (`["string", "null"]`, `oneOf: [null, X]`) is
//!   `nullable` in 3.0 (a nullable reference `allOf: [$ref]` beside it) and
//!   `x-nullable` in 2.0; `const` is a one-value `enum`;
//! - a request body's alternatives (`oneOf`, `anyOf`: the challenge kinds,
//!   the callback's outcomes) are flattened into one object of every
//!   member, required only where every alternative requires it, so an
//!   importer sees flat members (the rules between them stay in the
//!   operation's 422 description); a member that is itself an object gets
//!   a named schema of its own; a member that is one value or a list of
//!   such values is the list;
//! - neither has alternatives elsewhere either: every `oneOf`/`anyOf` (an
//!   answer's outcomes, the events) is flattened the same way, since the
//!   client generators that read 3.0 cannot make a type of them;
//! - in 2.0, bodies become `body` or `formData` parameters, response
//!   content a `schema` with `produces`, the bearer schemes `apiKey`
//!   headers;
//! - the events (3.1 `webhooks`) are left out: the 3.1 document has them
//!   (docs/decisions/0103-what-the-down-level-documents-say.md).
use serde_json::{json, Map, Value};
use url::Url;

/// Which document `GET /openapi.json?version=` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3_1,
    V3_0,
    V2_0,
}

impl Version {
    pub const ALL: [Version; 3] = [Version::V3_1, Version::V3_0, Version::V2_0];

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V3_1 => "3.1",
            Version::V3_0 => "3.0",
            Version::V2_0 => "2.0",
        }
    }

    pub fn parse(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The document of `version` derived from the 3.1 document `doc`, whose
/// server is `public_url`.
pub fn document(doc: &Value, version: Version, public_url: &Url) -> Value {
    match version {
        Version::V3_1 => doc.clone(),
        Version::V3_0 => openapi_3_0(doc, public_url),
        Version::V2_0 => swagger_2_0(doc, public_url),
    }
}

const COMPONENTS: &str = "#/components/schemas/";
const DEFINITIONS: &str = "#/definitions/";

fn openapi_3_0(doc: &Value, public_url: &Url) -> Value {
    let mut out = doc.clone();
    let mut schemas = take_schemas(&mut out);
    flatten_request_bodies(&out, &mut schemas, COMPONENTS);
    let named = schemas.clone();
    for schema in schemas.values_mut() {
        flatten_everywhere(schema, &named);
        to_3_0(schema);
    }
    if let Some(paths) = out.get_mut("paths").and_then(Value::as_object_mut) {
        for op in operations(paths) {
            each_operation_schema_with(op, &mut |s| flatten_everywhere(s, &named));
        }
    }
    let Some(root) = out.as_object_mut() else {
        return out;
    };
    root.remove("webhooks");
    root.insert("openapi".into(), json!("3.0.3"));
    root.insert(
        "servers".into(),
        json!([{"url": public_url.as_str().trim_end_matches('/'), "description": "this gateway"}]),
    );
    if let Some(info) = root.get_mut("info") {
        info_3_0(info);
    }
    if let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) {
        for op in operations(paths) {
            each_operation_schema(op, to_3_0);
        }
    }
    if let Some(c) = root.get_mut("components").and_then(Value::as_object_mut) {
        c.insert("schemas".into(), Value::Object(schemas));
    }
    prune_unused(&mut out, "/components/schemas", COMPONENTS);
    out
}

fn swagger_2_0(doc: &Value, public_url: &Url) -> Value {
    let mut source = doc.clone();
    let mut schemas = take_schemas(&mut source);
    flatten_request_bodies(&source, &mut schemas, DEFINITIONS);
    let named = schemas.clone();
    for s in schemas.values_mut() {
        flatten_everywhere(s, &named);
        to_2_0(s);
    }
    let mut paths = Map::new();
    if let Some(p) = source.get("paths").and_then(Value::as_object) {
        for (path, item) in p {
            let mut ops = Map::new();
            for (method, op) in item.as_object().into_iter().flatten() {
                let mut op = op.clone();
                each_operation_schema_with(&mut op, &mut |s| flatten_everywhere(s, &named));
                ops.insert(method.clone(), operation_2_0(&op, &schemas));
            }
            paths.insert(path.clone(), Value::Object(ops));
        }
    }
    let mut info = source.get("info").cloned().unwrap_or_else(|| json!({}));
    info_3_0(&mut info);
    let host = match public_url.port() {
        Some(port) => format!("{}:{port}", public_url.host_str().unwrap_or("localhost")),
        None => public_url.host_str().unwrap_or("localhost").to_string(),
    };
    let base = public_url.path().trim_end_matches('/');
    let mut security = Map::new();
    let schemes = source.pointer("/components/securitySchemes");
    for (name, _) in schemes.and_then(Value::as_object).into_iter().flatten() {
        security.insert(
            name.clone(),
            json!({"type": "apiKey", "in": "header", "name": "Authorization",
                   "description": "`Bearer ` and the key"}),
        );
    }
    let mut out = json!({
        "swagger": "2.0",
        "info": info,
        "host": host,
        "basePath": if base.is_empty() { "/" } else { base },
        "schemes": [public_url.scheme()],
        "paths": paths,
        "definitions": schemas,
        "securityDefinitions": security,
    });
    if let (Some(tags), Some(root)) = (source.get("tags"), out.as_object_mut()) {
        root.insert("tags".into(), tags.clone());
    }
    prune_unused(&mut out, "/definitions", DEFINITIONS);
    out
}

/// Drops the named schemas (at `at`, referred to as `prefix` + name) that
/// nothing refers to any more: the events' (3.1 `webhooks`), and those
/// only alternatives referred to before they were flattened.
fn prune_unused(doc: &mut Value, at: &str, prefix: &str) {
    let Some(named) = doc.pointer(at).and_then(Value::as_object).cloned() else {
        return;
    };
    let mut used: Vec<String> = Vec::new();
    let mut next = refs(doc.get("paths").unwrap_or(&Value::Null), prefix);
    while let Some(name) = next.pop() {
        if used.contains(&name) {
            continue;
        }
        if let Some(s) = named.get(&name) {
            next.extend(refs(s, prefix));
        }
        used.push(name);
    }
    if let Some(schemas) = doc.pointer_mut(at).and_then(Value::as_object_mut) {
        schemas.retain(|name, _| used.contains(name));
    }
}

/// The names `s` refers to under `prefix`.
fn refs(s: &Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text = s.to_string();
    let needle = format!("\"$ref\":\"{prefix}");
    for (at, _) in text.match_indices(&needle) {
        let rest = &text[at + needle.len()..];
        if let Some(end) = rest.find('"') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// `info` without what only 3.1 has (`summary`, a license's `identifier`).
fn info_3_0(info: &mut Value) {
    if let Some(i) = info.as_object_mut() {
        i.remove("summary");
        if let Some(l) = i.get_mut("license").and_then(Value::as_object_mut) {
            l.remove("identifier");
        }
    }
}

fn take_schemas(doc: &mut Value) -> Map<String, Value> {
    doc.pointer_mut("/components/schemas")
        .map(Value::take)
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

fn operations(paths: &mut Map<String, Value>) -> impl Iterator<Item = &mut Value> {
    paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
}

/// Applies `f` to every schema an operation holds: its parameters', its
/// request body's and its responses' (and their headers').
fn each_operation_schema(op: &mut Value, f: fn(&mut Value)) {
    each_operation_schema_with(op, &mut |s| f(s));
}

fn each_operation_schema_with(op: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    for p in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(s) = p.get_mut("schema") {
            f(s);
        }
    }
    if let Some(content) = op.pointer_mut("/requestBody/content") {
        each_content_schema(content, f);
    }
    for r in op
        .get_mut("responses")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|r| r.values_mut())
    {
        if let Some(content) = r.get_mut("content") {
            each_content_schema(content, f);
        }
        for h in r
            .get_mut("headers")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|h| h.values_mut())
        {
            if let Some(s) = h.get_mut("schema") {
                f(s);
            }
        }
    }
}

fn each_content_schema(content: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    for media in content
        .as_object_mut()
        .into_iter()
        .flat_map(|c| c.values_mut())
    {
        if let Some(s) = media.get_mut("schema") {
            f(s);
        }
    }
}

/// The named schemas request bodies refer to, each flattened into one
/// object of plain members (see the module's comment); `prefix` is where
/// the new named schemas of object members are referred to.
fn flatten_request_bodies(doc: &Value, schemas: &mut Map<String, Value>, prefix: &str) {
    let mut bodies = Vec::new();
    for item in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|i| i.values()) {
            let content = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object);
            for media in content.into_iter().flat_map(|c| c.values()) {
                if let Some(name) = media.pointer("/schema/$ref").and_then(Value::as_str) {
                    bodies.push(name.trim_start_matches(COMPONENTS).to_string());
                }
            }
        }
    }
    bodies.sort();
    bodies.dedup();
    for name in bodies {
        let Some(schema) = schemas.get(&name).cloned() else {
            continue;
        };
        let mut flat = flatten(&schema, schemas);
        let mut hoisted = Vec::new();
        if let Some(props) = flat.get_mut("properties").and_then(Value::as_object_mut) {
            for (member, s) in props.iter_mut() {
                let nullable = allows_null(s);
                let object = without_null(s);
                if is_inline_object(&object) {
                    let named = format!("{name}{}", pascal(member));
                    let description = object.get("description").cloned();
                    hoisted.push((named.clone(), object));
                    *s = reference(&format!("{COMPONENTS}{named}"), nullable, description);
                } else if let Some(items) = s.get_mut("items").filter(|i| !is_plain_item(i)) {
                    // An array of objects (or of anything: a provider's
                    // entries) is an array of a named schema.
                    let named = format!("{name}{}Item", pascal(member));
                    let mut item = items.take();
                    if item.as_object().is_some_and(Map::is_empty) {
                        item = json!({"type": "object"});
                    }
                    hoisted.push((named.clone(), item));
                    *items = json!({"$ref": format!("{COMPONENTS}{named}")});
                }
            }
        }
        for (named, s) in hoisted {
            schemas.insert(named, s);
        }
        schemas.insert(name, flat);
    }
    if prefix != COMPONENTS {
        for s in schemas.values_mut() {
            rename_refs(s, COMPONENTS, prefix);
        }
    }
}

/// A schema without its alternatives: one object of every member of
/// every alternative (object alternatives), or the one type they share
/// (scalar alternatives, whose `enum`s are joined).
fn flatten(schema: &Value, schemas: &Map<String, Value>) -> Value {
    let alternatives = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array);
    let Some(alternatives) = alternatives else {
        return schema.clone();
    };
    let mut out = Map::new();
    if let Some(d) = schema.get("description") {
        out.insert("description".into(), d.clone());
    }
    let resolved: Vec<Value> = alternatives
        .iter()
        .filter(|a| !is_null_only(a))
        .map(|a| flatten(&resolve(a, schemas), schemas))
        .collect();
    if resolved.len() < alternatives.len() {
        out.insert("nullable".into(), json!(true));
    }
    if let Some(list) = one_or_a_list(&resolved) {
        let mut list = list.clone();
        if let (Some(o), Some(d)) = (list.as_object_mut(), out.get("description")) {
            o.insert("description".into(), d.clone());
        }
        return list;
    }
    let all_objects =
        !resolved.is_empty() && resolved.iter().all(|a| a.get("properties").is_some());
    if !all_objects {
        for (k, v) in merge_members(&resolved, schemas) {
            out.insert(k, v);
        }
        return Value::Object(out);
    }
    let mut names: Vec<String> = Vec::new();
    for a in &resolved {
        for k in a["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let mut properties = Map::new();
    for name in &names {
        let each: Vec<Value> = resolved
            .iter()
            .filter_map(|a| a["properties"].get(name).cloned())
            .collect();
        properties.insert(name.clone(), merge_member(&each, schemas));
    }
    let required: Vec<Value> = names
        .iter()
        .filter(|n| resolved.iter().all(|a| requires(a, n)))
        .map(|n| json!(n))
        .collect();
    out.insert("type".into(), json!("object"));
    out.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        out.insert("required".into(), Value::Array(required));
    }
    if resolved
        .iter()
        .all(|a| a.get("additionalProperties") == Some(&json!(false)))
    {
        out.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(out)
}

/// Of alternatives that are one value or a list of such values (a
/// wallet challenge's `credential`), the list: it says everything the
/// member takes, a single value being a list of one.
fn one_or_a_list(alternatives: &[Value]) -> Option<&Value> {
    let [a, b] = alternatives else {
        return None;
    };
    let (one, list) = match a.get("type") == Some(&json!("array")) {
        true => (b, a),
        false => (a, b),
    };
    let items = list.get("items")?;
    let same = one.get("type").is_some() && one.get("type") == items.get("type");
    (list.get("type") == Some(&json!("array")) && same).then_some(list)
}

/// `s` and every schema under it without alternatives (2.0 has none):
/// each `oneOf`/`anyOf` of more than one non-null schema flattened.
fn flatten_everywhere(s: &mut Value, schemas: &Map<String, Value>) {
    let several = ["oneOf", "anyOf"].iter().any(|k| {
        s.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().filter(|x| !is_null_only(x)).count() > 1)
    });
    if several {
        *s = flatten(s, schemas);
    }
    let Some(o) = s.as_object_mut() else {
        return;
    };
    if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
        p.values_mut().for_each(|v| flatten_everywhere(v, schemas));
    }
    for k in ["items", "not", "additionalProperties"] {
        if let Some(v) = o.get_mut(k).filter(|v| v.is_object()) {
            flatten_everywhere(v, schemas);
        }
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(a) = o.get_mut(k).and_then(Value::as_array_mut) {
            a.iter_mut().for_each(|v| flatten_everywhere(v, schemas));
        }
    }
}

/// One member as every alternative that has it states it: as they state
/// it when they agree, else nullable if any admits null, and what the
/// rest share ([`merge_members`]).
fn merge_member(each: &[Value], schemas: &Map<String, Value>) -> Value {
    if each.windows(2).all(|w| w[0] == w[1]) {
        return each.first().cloned().unwrap_or_else(|| json!({}));
    }
    let mut merged = Map::new();
    if let Some(d) = each.iter().find_map(|s| s.get("description").cloned()) {
        merged.insert("description".into(), d);
    }
    if each.iter().any(allows_null) {
        merged.insert("nullable".into(), json!(true));
    }
    let plain: Vec<Value> = each
        .iter()
        .filter(|s| !is_null_only(s))
        .map(without_null)
        .collect();
    if plain.windows(2).all(|w| w[0] == w[1]) && !plain.is_empty() {
        let mut one = plain[0].clone();
        if let Some(o) = one.as_object_mut() {
            o.extend(merged);
        }
        return one;
    }
    let resolved: Vec<Value> = plain.iter().map(|s| resolve(s, schemas)).collect();
    merged.extend(merge_members(&resolved, schemas));
    Value::Object(merged)
}

/// What several scalar schemas share: their joined `enum` when each has
/// one, else the one type they all have (nothing when they differ).
fn merge_members(each: &[Value], schemas: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let each: Vec<Value> = each.iter().map(|s| resolve(s, schemas)).collect();
    let kind = |s: &Value| s.get("type").cloned().or_else(|| enum_type(s));
    let types: Vec<Option<Value>> = each.iter().map(kind).collect();
    let same_type = types
        .first()
        .cloned()
        .flatten()
        .filter(|t| types.iter().all(|o| o.as_ref() == Some(t)));
    if let Some(t) = same_type {
        out.insert("type".into(), t);
    }
    if !each.is_empty() && each.iter().all(|s| enum_values(s).is_some()) {
        let mut values: Vec<Value> = Vec::new();
        for v in each.iter().filter_map(enum_values).flatten() {
            if !values.contains(&v) {
                values.push(v);
            }
        }
        out.insert("enum".into(), Value::Array(values));
    }
    out
}

fn enum_values(s: &Value) -> Option<Vec<Value>> {
    if let Some(c) = s.get("const") {
        return Some(vec![c.clone()]);
    }
    s.get("enum").and_then(Value::as_array).cloned()
}

fn enum_type(s: &Value) -> Option<Value> {
    let values = enum_values(s)?;
    let first = values.iter().find(|v| !v.is_null())?;
    let t = match first {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        _ => return None,
    };
    Some(json!(t))
}

fn requires(schema: &Value, name: &str) -> bool {
    schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|n| n == name))
}

/// `s` itself, or the named schema it refers to (also through a lone
/// `allOf`), so its members can be seen.
fn resolve(s: &Value, schemas: &Map<String, Value>) -> Value {
    let target = s.get("$ref").or_else(|| {
        s.get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|f| f.get("$ref"))
    });
    match target.and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or(r);
            schemas.get(name).cloned().unwrap_or_else(|| s.clone())
        }
        None => s.clone(),
    }
}

fn is_null_only(s: &Value) -> bool {
    s.get("type") == Some(&json!("null")) || s.get("const") == Some(&Value::Null)
}

/// Whether `s` (a 3.1 schema) admits `null`.
fn allows_null(s: &Value) -> bool {
    let typed = s
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|t| t.contains(&json!("null")));
    let alternative = ["oneOf", "anyOf"].iter().any(|k| {
        s.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(is_null_only))
    });
    let listed = s
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|e| e.contains(&Value::Null));
    typed || alternative || listed || is_null_only(s) || s.get("nullable") == Some(&json!(true))
}

/// `s` with `null` taken out of it (its type, its alternatives, its enum).
fn without_null(s: &Value) -> Value {
    let mut s = s.clone();
    let Some(o) = s.as_object_mut() else {
        return s;
    };
    o.remove("nullable");
    if let Some(types) = o.get("type").and_then(Value::as_array) {
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        let one = match rest.as_slice() {
            [t] => t.clone(),
            _ => Value::Array(rest),
        };
        o.insert("type".into(), one);
    }
    if let Some(e) = o.get_mut("enum").and_then(Value::as_array_mut) {
        e.retain(|v| !v.is_null());
    }
    for k in ["oneOf", "anyOf"] {
        let Some(alts) = o.get(k).and_then(Value::as_array) else {
            continue;
        };
        let rest: Vec<Value> = alts.iter().filter(|a| !is_null_only(a)).cloned().collect();
        if let [one] = rest.as_slice() {
            o.remove(k);
            if let Some(one) = one.as_object() {
                for (key, v) in one {
                    o.entry(key.clone()).or_insert_with(|| v.clone());
                }
            }
        } else {
            o.insert(k.into(), Value::Array(rest));
        }
    }
    s
}

/// An array's items a platform takes as they are: a scalar or a named
/// schema.
fn is_plain_item(items: &Value) -> bool {
    items.get("$ref").is_some()
        || matches!(
            items.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "number" | "boolean")
        )
}

fn is_inline_object(s: &Value) -> bool {
    s.get("$ref").is_none()
        && (s.get("properties").is_some()
            || s.get("additionalProperties").is_some_and(Value::is_object)
            || s.get("type") == Some(&json!("object")))
}

/// A reference to `target`, nullable as 3.0 says it (`allOf` beside
/// `nullable`), or plainly when not.
fn reference(target: &str, nullable: bool, description: Option<Value>) -> Value {
    let mut out = Map::new();
    if let Some(d) = description {
        out.insert("description".into(), d);
    }
    if nullable || !out.is_empty() {
        out.insert("allOf".into(), json!([{"$ref": target}]));
        if nullable {
            out.insert("nullable".into(), json!(true));
        }
    } else {
        out.insert("$ref".into(), json!(target));
    }
    Value::Object(out)
}

fn pascal(member: &str) -> String {
    member
        .split(['_', '-'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn rename_refs(s: &mut Value, from: &str, to: &str) {
    match s {
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) if r.starts_with(from) => {
                        *v = json!(format!("{to}{}", &r[from.len()..]));
                    }
                    _ => rename_refs(v, from, to),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rename_refs(v, from, to)),
        _ => {}
    }
}

/// The sub-schemas of `s` (members, items, alternatives) for a recursive
/// rewrite.
fn each_sub_schema(s: &mut Value, f: fn(&mut Value)) {
    let Some(o) = s.as_object_mut() else {
        return;
    };
    if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
        p.values_mut().for_each(f);
    }
    for k in ["items", "not"] {
        if let Some(v) = o.get_mut(k) {
            f(v);
        }
    }
    if let Some(v) = o.get_mut("additionalProperties").filter(|v| v.is_object()) {
        f(v);
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(a) = o.get_mut(k).and_then(Value::as_array_mut) {
            a.iter_mut().for_each(f);
        }
    }
}

/// What 3.0 and 2.0 both say otherwise: a `const` is a one-value `enum`,
/// `examples` the one `example`; a string's content (`contentMediaType`,
/// `contentSchema`: an event frame's `data`) has no word there, and its
/// description says it.
fn older_words(o: &mut Map<String, Value>) {
    if let Some(c) = o.remove("const") {
        o.insert("enum".into(), json!([c]));
    }
    o.remove("contentMediaType");
    o.remove("contentSchema");
    if let Some(Value::Array(mut e)) = o.remove("examples") {
        if !e.is_empty() {
            o.insert("example".into(), e.swap_remove(0));
        }
    }
}

/// One 3.1 schema in 3.0's words.
fn to_3_0(s: &mut Value) {
    let nullable = allows_null(s);
    let mut plain = without_null(s);
    each_sub_schema(&mut plain, to_3_0);
    let Some(o) = plain.as_object_mut() else {
        return;
    };
    older_words(o);
    o.remove("propertyNames");
    // Several types besides null, or null alone: 3.0 has no word for it.
    if o.get("type").is_some_and(|t| t.is_array() || t == "null") {
        o.remove("type");
    }
    if o.contains_key("$ref") && (o.len() > 1 || nullable) {
        let target = o.remove("$ref").unwrap_or(Value::Null);
        o.insert("allOf".into(), json!([{"$ref": target}]));
    }
    if nullable {
        o.insert("nullable".into(), json!(true));
    }
    *s = plain;
}

/// One 3.1 schema (already without its request bodies' alternatives) in
/// 2.0's words: every alternative flattened, `x-nullable` for null.
fn to_2_0(s: &mut Value) {
    let nullable = allows_null(s);
    let mut plain = without_null(s);
    each_sub_schema(&mut plain, to_2_0);
    let Some(o) = plain.as_object_mut() else {
        return;
    };
    older_words(o);
    for k in ["propertyNames", "not", "nullable"] {
        o.remove(k);
    }
    if o.get("type").is_some_and(|t| t.is_array() || t == "null") {
        o.remove("type");
    }
    rename_refs(&mut plain, COMPONENTS, DEFINITIONS);
    if let Some(o) = plain.as_object_mut() {
        if o.contains_key("$ref") && o.len() > 1 {
            o.retain(|k, _| k == "$ref");
        }
        if nullable {
            o.insert("x-nullable".into(), json!(true));
        }
    }
    *s = plain;
}

/// A schema a 2.0 parameter or header can hold inline: its named schema
/// followed, in 2.0's words, with only the keys a parameter may have.
fn inline_2_0(s: &Value, schemas: &Map<String, Value>) -> Map<String, Value> {
    let mut s = s.clone();
    to_2_0(&mut s);
    let s = resolve(&s, schemas);
    const KEEP: [&str; 12] = [
        "type",
        "format",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "default",
        "minItems",
        "maxItems",
    ];
    let mut out: Map<String, Value> = s
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| KEEP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.entry("type").or_insert_with(|| json!("string"));
    out
}

fn operation_2_0(op: &Value, schemas: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for k in ["tags", "summary", "description", "operationId", "security"] {
        if let Some(v) = op.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    let mut parameters: Vec<Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| parameter_2_0(p, schemas))
        .collect();
    if let Some(body) = op.get("requestBody") {
        let content = body.get("content").and_then(Value::as_object);
        let consumes: Vec<&String> = content.into_iter().flat_map(|c| c.keys()).collect();
        out.insert("consumes".into(), json!(consumes));
        parameters.extend(body_2_0(body, schemas));
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    let (responses, produces) = responses_2_0(op, schemas);
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// A 3.1 parameter as 2.0 has it: its schema inline.
fn parameter_2_0(p: &Value, schemas: &Map<String, Value>) -> Value {
    let mut param = Map::new();
    for k in ["name", "in", "description", "required"] {
        if let Some(v) = p.get(k) {
            param.insert(k.into(), v.clone());
        }
    }
    if p.get("in") == Some(&json!("path")) {
        param.insert("required".into(), json!(true));
    }
    param.extend(inline_2_0(p.get("schema").unwrap_or(&json!({})), schemas));
    Value::Object(param)
}

/// A request body as 2.0 parameters: `formData` ones for a form, else
/// the one `body` parameter.
fn body_2_0(body: &Value, schemas: &Map<String, Value>) -> Vec<Value> {
    let required = body.get("required").cloned().unwrap_or(json!(false));
    let content = body.get("content").and_then(Value::as_object);
    let Some((media, m)) = content.and_then(|c| c.iter().next()) else {
        return Vec::new();
    };
    let mut schema = m.get("schema").cloned().unwrap_or(json!({}));
    to_2_0(&mut schema);
    if media != "application/x-www-form-urlencoded" {
        return vec![json!({"name": "body", "in": "body", "required": required, "schema": schema})];
    }
    let form = resolve(&schema, schemas);
    let props = form.get("properties").and_then(Value::as_object);
    props
        .into_iter()
        .flatten()
        .map(|(name, s)| {
            let mut param = Map::new();
            param.insert("name".into(), json!(name));
            param.insert("in".into(), json!("formData"));
            param.insert("required".into(), json!(requires(&form, name)));
            if let Some(d) = s.get("description") {
                param.insert("description".into(), d.clone());
            }
            param.extend(inline_2_0(s, schemas));
            Value::Object(param)
        })
        .collect()
}

/// An operation's answers as 2.0 has them, and every content type they
/// may have (`produces`).
fn responses_2_0(op: &Value, schemas: &Map<String, Value>) -> (Map<String, Value>, Vec<String>) {
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (status, r) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let mut answer = Map::new();
        answer.insert(
            "description".into(),
            r.get("description").cloned().unwrap_or(json!("")),
        );
        let content = r.get("content").and_then(Value::as_object);
        for media in content.into_iter().flat_map(|c| c.keys()) {
            if !produces.contains(media) {
                produces.push(media.clone());
            }
        }
        // One schema per answer in 2.0: the JSON one when there is one.
        let chosen = content.and_then(|c| {
            c.iter()
                .find(|(m, _)| m.contains("json"))
                .or_else(|| c.iter().next())
        });
        if let Some(schema) = chosen.and_then(|(_, m)| m.get("schema")) {
            let mut schema = schema.clone();
            to_2_0(&mut schema);
            answer.insert("schema".into(), schema);
        }
        let headers = headers_2_0(r, schemas);
        if !headers.is_empty() {
            answer.insert("headers".into(), Value::Object(headers));
        }
        responses.insert(status.clone(), Value::Object(answer));
    }
    (responses, produces)
}

/// An answer's headers, each schema inline.
fn headers_2_0(r: &Value, schemas: &Map<String, Value>) -> Map<String, Value> {
    let mut headers = Map::new();
    for (name, h) in r
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let mut header = inline_2_0(h.get("schema").unwrap_or(&json!({})), schemas);
        if let Some(d) = h.get("description") {
            header.insert("description".into(), d.clone());
        }
        headers.insert(name.clone(), Value::Object(header));
    }
    headers
}

#[cfg(test)]
mod tests;
