//! The down-level documents, on a small 3.1 document that has each thing
//! 3.1 adds, and on the gateway's own.
use serde_json::{json, Value};
use url::Url;

use super::{document, Version};

fn url() -> Url {
    Url::parse("https://gw.example.com:8443/chat").expect("url")
}

/// One of each: a nullable type, a nullable reference, a `const`, a
/// request body of alternatives, a form body, a map member, a webhook.
fn small() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1", "license": {"name": "MIT", "identifier": "MIT"}},
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/things/{id}": {
                "post": {
                    "operationId": "start",
                    "parameters": [
                        {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}},
                        {"name": "channel", "in": "query", "schema": {"$ref": "#/components/schemas/Channel"}}
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewThing"}}}},
                    "responses": {
                        "201": {"description": "made", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}},
                                "headers": {"Retry-After": {"description": "s", "schema": {"type": "integer"}}}},
                        "422": {"description": "bad", "content": {"application/problem+json": {"schema": {"type": "object"}}}}
                    },
                    "security": [{"api_key": []}]
                }
            },
            "/logout": {
                "post": {
                    "operationId": "logout",
                    "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Form"}}}},
                    "responses": {"200": {"description": "ok"}},
                    "security": []
                }
            }
        },
        "webhooks": {"event": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}, "responses": {"200": {"description": "ok"}}}}},
        "components": {
            "securitySchemes": {"api_key": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Channel": {"type": "string", "enum": ["web", "sms"]},
                "Phone": {"type": "string", "pattern": "^\\+[0-9]+$"},
                "Email": {"type": "string", "format": "email"},
                "Form": {"type": "object", "required": ["logout_token"], "properties": {"logout_token": {"type": "string"}}},
                "Thing": {"type": "object", "properties": {
                    "name": {"type": ["string", "null"]},
                    "channel": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Channel", "description": "where"}]},
                    "kind": {"oneOf": [{"$ref": "#/components/schemas/Channel"}, {"type": "string", "enum": ["app"]}]},
                    "ok": {"const": true}
                }},
                "NewThing": {"anyOf": [
                    {"type": "object", "additionalProperties": false, "required": ["method"], "properties": {
                        "method": {"const": "otp"}, "delivery": {"enum": ["chat", null]}, "to": {"type": "null"}}},
                    {"type": "object", "additionalProperties": false, "required": ["method", "delivery"], "properties": {
                        "method": {"const": "otp"}, "delivery": {"const": "sms"},
                        "to": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Phone"}]}}},
                    {"type": "object", "additionalProperties": false, "required": ["method"], "properties": {
                        "method": {"const": "pin"},
                        "to": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Email"}]},
                        "customer": {"type": "object", "additionalProperties": {"type": "string"}, "propertyNames": {"pattern": "^[a-z]+$"}}}}
                ]}
            }
        }
    })
}

#[test]
fn three_point_one_is_the_document_itself() {
    assert_eq!(document(&small(), Version::V3_1, &url()), small());
    for v in Version::ALL {
        assert_eq!(Version::parse(v.as_str()), Some(v));
    }
    assert_eq!(Version::parse("3.2"), None);
}

#[test]
fn three_point_zero_says_null_const_and_alternatives_in_its_words() {
    let d = document(&small(), Version::V3_0, &url());
    assert_eq!(d["openapi"], "3.0.3");
    assert!(d.get("webhooks").is_none());
    assert_eq!(
        d["servers"],
        json!([{"url": "https://gw.example.com:8443/chat", "description": "this gateway"}])
    );
    assert!(d["info"]["license"].get("identifier").is_none());
    let thing = &d["components"]["schemas"]["Thing"]["properties"];
    assert_eq!(thing["name"], json!({"type": "string", "nullable": true}));
    assert_eq!(
        thing["channel"],
        json!({"allOf": [{"$ref": "#/components/schemas/Channel"}], "description": "where", "nullable": true})
    );
    assert_eq!(thing["ok"], json!({"enum": [true]}));
    // An answer's alternatives are flattened too: generators cannot type them.
    assert_eq!(thing["kind"]["enum"], json!(["web", "sms", "app"]));
    assert!(!d.to_string().contains("oneOf") && !d.to_string().contains("anyOf"));
    // The request body: one flat object.
    let new = &d["components"]["schemas"]["NewThing"];
    assert!(new.get("anyOf").is_none(), "{new}");
    assert_eq!(new["type"], "object");
    assert_eq!(
        new["required"],
        json!(["method"]),
        "required by every alternative only"
    );
    assert_eq!(new["additionalProperties"], json!(false));
    let p = &new["properties"];
    assert_eq!(p["method"]["enum"], json!(["otp", "pin"]));
    assert_eq!(p["delivery"]["enum"], json!(["chat", "sms"]));
    assert_eq!(p["delivery"]["nullable"], json!(true));
    assert_eq!(p["to"]["type"], "string", "the type phone and e-mail share");
    assert_eq!(p["to"]["nullable"], json!(true));
    // A member that is an object is a named schema of its own.
    assert_eq!(
        p["customer"],
        json!({"$ref": "#/components/schemas/NewThingCustomer"})
    );
    let customer = &d["components"]["schemas"]["NewThingCustomer"];
    assert_eq!(customer["additionalProperties"], json!({"type": "string"}));
    assert!(customer.get("propertyNames").is_none());
    assert_eq!(
        d["paths"]["/v1/things/{id}"]["post"]["operationId"],
        "start"
    );
}

#[test]
fn two_point_zero_has_bodies_as_parameters_and_no_alternatives() {
    let d = document(&small(), Version::V2_0, &url());
    assert_eq!(d["swagger"], "2.0");
    assert_eq!(d["host"], "gw.example.com:8443");
    assert_eq!(d["basePath"], "/chat");
    assert_eq!(d["schemes"], json!(["https"]));
    assert!(d.get("components").is_none() && d.get("webhooks").is_none());
    assert_eq!(
        d["securityDefinitions"]["api_key"],
        json!({"type": "apiKey", "in": "header", "name": "Authorization", "description": "`Bearer ` and the key"})
    );
    let op = &d["paths"]["/v1/things/{id}"]["post"];
    assert_eq!(op["operationId"], "start");
    assert_eq!(op["consumes"], json!(["application/json"]));
    assert_eq!(
        op["produces"],
        json!(["application/json", "application/problem+json"])
    );
    let params = op["parameters"].as_array().expect("parameters");
    assert_eq!(
        params[0],
        json!({"name": "id", "in": "path", "required": true, "type": "string", "format": "uuid"})
    );
    assert_eq!(
        params[1],
        json!({"name": "channel", "in": "query", "type": "string", "enum": ["web", "sms"]})
    );
    assert_eq!(
        params[2],
        json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/NewThing"}})
    );
    assert_eq!(
        op["responses"]["201"]["schema"],
        json!({"$ref": "#/definitions/Thing"})
    );
    assert_eq!(
        op["responses"]["201"]["headers"]["Retry-After"],
        json!({"type": "integer", "description": "s"})
    );
    let logout = &d["paths"]["/logout"]["post"];
    assert_eq!(
        logout["parameters"],
        json!([{"name": "logout_token", "in": "formData", "required": true, "type": "string"}])
    );
    assert_eq!(
        logout["consumes"],
        json!(["application/x-www-form-urlencoded"])
    );
    let thing = &d["definitions"]["Thing"]["properties"];
    assert_eq!(thing["name"], json!({"type": "string", "x-nullable": true}));
    assert_eq!(thing["kind"]["enum"], json!(["web", "sms", "app"]));
    let text = d.to_string();
    for word in [
        "oneOf",
        "anyOf",
        "\"nullable\"",
        "#/components/",
        "propertyNames",
        "const",
    ] {
        assert!(!text.contains(word), "{word} in {text}");
    }
}

/// Every `$ref` of `doc` names a schema it has.
fn refs_resolve(doc: &Value, prefix: &str, schemas: &Value) {
    match doc {
        Value::Object(o) => {
            for (k, v) in o {
                if k == "$ref" {
                    let r = v.as_str().expect("a string");
                    let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("{r}"));
                    assert!(schemas.get(name).is_some(), "{r} names nothing");
                } else {
                    refs_resolve(v, prefix, schemas);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs_resolve(v, prefix, schemas)),
        _ => {}
    }
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            out.push((path.clone(), method.clone(), op["operationId"].clone()));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// A request body member as a platform's importer wants it: a scalar, an
/// array of scalars, or a reference to a named schema.
fn plain_member(m: &Value) -> bool {
    let reference = m.get("$ref").is_some()
        || m.get("allOf")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() == 1 && a[0].get("$ref").is_some());
    let scalar = |s: &Value| {
        matches!(
            s.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "number" | "boolean")
        ) || (s.get("type").is_none() && s.get("enum").is_some())
    };
    let array = m.get("type") == Some(&json!("array"))
        && m.get("items")
            .is_some_and(|i| scalar(i) || i.get("$ref").is_some());
    reference || scalar(m) || array
}

#[test]
fn the_gateway_s_document_keeps_every_operation_in_both() {
    let full: Value = serde_json::from_str(&crate::http::openapi_json()).expect("the document");
    let every = operations(&full);
    assert!(every.len() > 30, "{} operations", every.len());
    for (version, prefix, schemas) in [
        (
            Version::V3_0,
            "#/components/schemas/",
            "/components/schemas",
        ),
        (Version::V2_0, "#/definitions/", "/definitions"),
    ] {
        let d = document(&full, version, &url());
        assert_eq!(operations(&d), every, "{version:?}");
        let named = d.pointer(schemas).expect("named schemas").clone();
        refs_resolve(&d, prefix, &named);
        let text = d.to_string();
        // Nothing is left that nothing refers to (linters and
        // openapi-typescript refuse an unused component).
        for name in named.as_object().expect("an object").keys() {
            let reference = format!("\"$ref\":\"{prefix}{name}\"");
            assert!(
                text.contains(&reference),
                "{version:?}: {name} is never used"
            );
        }
        assert!(!text.contains("\"const\""), "{version:?}");
        assert!(!text.contains("\"webhooks\""), "{version:?}");
        assert!(
            !text.contains("\"type\":[") && !text.contains("\"type\":\"null\""),
            "{version:?}"
        );
        assert!(
            !text.contains("oneOf") && !text.contains("anyOf"),
            "{version:?}: no alternatives"
        );
        // Every request body: plain members.
        for item in full["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for op in item.as_object().into_iter().flat_map(|i| i.values()) {
                let Some(r) = op.pointer("/requestBody/content/application~1json/schema/$ref")
                else {
                    continue;
                };
                let name = r
                    .as_str()
                    .and_then(|r| r.rsplit('/').next())
                    .expect("a name");
                let body = &named[name];
                assert!(
                    body.get("oneOf").is_none() && body.get("anyOf").is_none(),
                    "{name}"
                );
                for (member, m) in body["properties"].as_object().into_iter().flatten() {
                    assert!(plain_member(m), "{version:?} {name}.{member}: {m}");
                }
            }
        }
    }
}
