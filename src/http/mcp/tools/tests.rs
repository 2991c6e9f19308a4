//! `tools/list`, the dispatch of `tools/call` and the metric's labels are
//! made of [`TOOLS`] alone, and each tool's schemas hold.
use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn listed() -> Vec<Value> {
    list()["tools"].as_array().cloned().unwrap_or_default()
}

#[test]
fn tools_list_gives_every_line_of_tools_once_under_its_own_name_in_order() {
    let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
    let listed: Vec<String> = listed()
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, names);
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len());
    for name in names {
        let snake = name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        assert!(
            snake && !name.is_empty(),
            "{name}: a tool's name is snake_case"
        );
        assert!(
            INSTRUCTIONS.contains(name),
            "{name}: the instructions name every tool"
        );
    }
}

#[test]
fn tools_call_finds_each_line_of_tools_by_its_exact_name_and_nothing_else() {
    for t in TOOLS {
        let found = named(t.name).map(|f| f.name);
        assert_eq!(found, Some(t.name));
        assert!(named(&t.name.to_uppercase()).is_none(), "{}", t.name);
        assert!(named(&format!("{} ", t.name)).is_none(), "{}", t.name);
    }
    for unknown in ["", "no_such_tool", "assurance"] {
        assert!(named(unknown).is_none(), "{unknown}");
    }
}

#[test]
fn every_line_of_tools_has_its_metric_series_at_zero_and_no_other_tool_has_one() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, register_series);
    let text = handle.render();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("chatgate_mcp_calls_total{"))
        .collect();
    assert_eq!(series.len(), TOOLS.len() * RESULTS.len(), "{text}");
    for t in TOOLS {
        for result in RESULTS {
            let line = format!(
                "chatgate_mcp_calls_total{{tool=\"{}\",result=\"{result}\"}} 0",
                t.name
            );
            assert!(series.contains(&line.as_str()), "{line} in {text}");
        }
    }
}

#[test]
fn each_tool_s_schemas_compile_and_its_input_schema_names_exactly_its_arguments() {
    for (t, listing) in TOOLS.iter().zip(listed()) {
        for schema in ["inputSchema", "outputSchema"] {
            assert_eq!(listing[schema]["type"], "object", "{} {schema}", t.name);
            let broken = jsonschema::validator_for(&listing[schema]).err();
            assert!(broken.is_none(), "{} {schema}: {broken:?}", t.name);
        }
        let properties = listing["inputSchema"]["properties"].as_object();
        let properties: BTreeSet<String> = properties
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let members: BTreeSet<String> = (t.members)().into_iter().collect();
        assert_eq!(properties, members, "{}: its schema and its Args", t.name);
        assert_eq!(
            listing["inputSchema"]["additionalProperties"], false,
            "{}",
            t.name
        );
        let required = listing["inputSchema"]["required"].as_array().cloned();
        for r in required.unwrap_or_default() {
            assert!(
                members.contains(r.as_str().unwrap_or_default()),
                "{}: {r}",
                t.name
            );
        }
    }
}

#[test]
fn each_tool_is_titled_described_and_annotated() {
    for listing in listed() {
        let title = listing["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{listing}");
        assert!(listing["description"].as_str().unwrap_or_default().len() > 100);
        let a = &listing["annotations"];
        assert_eq!(a["title"], title);
        let read_only = a["readOnlyHint"].as_bool();
        // A tool that changes nothing destroys nothing: the hint is left out.
        assert_eq!(
            a.get("destructiveHint").is_some(),
            read_only == Some(false),
            "{listing}"
        );
        assert!(a["idempotentHint"].is_boolean() && a["openWorldHint"].is_boolean());
    }
}

#[test]
fn get_verification_s_schema_and_its_check_bound_the_wait_alike() {
    let get = listed()
        .into_iter()
        .find(|t| t["name"] == "get_verification");
    let get = get.unwrap_or_default();
    let max = &get["inputSchema"]["properties"]["wait_seconds"]["maximum"];
    assert_eq!(max.as_u64(), Some(crate::gateway::mcp::MAX_WAIT_SECONDS));
    let said = format!("(up to {})", crate::gateway::mcp::MAX_WAIT_SECONDS);
    assert!(get["description"]
        .as_str()
        .unwrap_or_default()
        .contains(&said));
}

#[test]
fn every_line_of_tools_is_documented_and_named_in_its_metric_s_help() {
    let agents = include_str!("../../../../docs/agents.md");
    let operations = include_str!("../../../../docs/operations.md");
    let row = operations
        .lines()
        .find(|l| l.starts_with("| `chatgate_mcp_calls_total` |"));
    let help = crate::telemetry::FAMILIES
        .iter()
        .find(|f| f.0 == "chatgate_mcp_calls_total")
        .map(|f| f.3);
    for t in TOOLS {
        let name = t.name;
        let heading = format!("\n### {name}\n");
        assert!(
            agents.contains(&heading),
            "docs/agents.md: a section {name}"
        );
        let http_twin = format!("\n| `{name}` | ");
        assert!(
            agents.contains(&http_twin),
            "docs/agents.md#without-mcp: {name}"
        );
        assert!(
            row.unwrap_or_default().contains(name),
            "docs/operations.md: {name}"
        );
        assert!(help.unwrap_or_default().contains(name), "FAMILIES: {name}");
    }
}

/// The size of the future `f` returns, from its type alone.
fn future_of<A, B, R: std::future::Future, F: Fn(A, B) -> R>(_: &F) -> usize {
    std::mem::size_of::<R>()
}

/// The largest future a `get_verification` call holds while it waits
/// (`tool::called` boxes it whole): its read's store call runs in a box
/// of its own and is not part of it
/// (docs/performance.md#an-mcp-tool-call).
const WAITING_TOOL_FUTURE: usize = 4096;

#[test]
fn a_waiting_get_verification_holds_a_future_of_a_few_kib_and_its_read_is_not_in_it() {
    let size = future_of(&<get_verification::GetVerification as tool::Tool>::call);
    eprintln!("GetVerification::call: {size} bytes");
    assert!(size <= WAITING_TOOL_FUTURE, "{size} bytes");
}

#[test]
fn a_get_verification_s_arguments_are_read_into_its_own_two_strings_and_nothing_more() {
    let text = r#"{"interaction_id":"0192d3f8-5f0e-7a51-8c1e-1f2d3c4b5a69","wait_seconds":25,
        "after":"00112233445566778899aabbccddeeff0011223344556677"}"#;
    let (args, made) = crate::counted_allocations::allocations(|| {
        arguments::arguments::<get_verification::GetArgs>(text).is_ok()
    });
    assert!(args);
    assert_eq!(made, 2, "interaction_id and after: no tree, no path kept");
    // Arguments that break the schema are still told by their pointer.
    let Err(arguments::Failure(e)) =
        arguments::arguments::<get_verification::GetArgs>(r#"{"wait_seconds":"x"}"#)
    else {
        panic!("a string is no wait");
    };
    assert!(e.to_string().contains("/wait_seconds"), "{e}");
}

/// A tool's answer as serde wrote it when a result was a `Serialize`
/// struct: the members, their order and their escapes that
/// [`ToolResult::answered`] writes by hand.
#[derive(serde::Serialize)]
struct AsSerdeWrites<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: SerdeResult<'a>,
}

#[derive(serde::Serialize)]
struct SerdeResult<'a> {
    content: [SerdeText<'a>; 1],
    #[serde(rename = "isError")]
    is_error: bool,
    #[serde(rename = "structuredContent", skip_serializing_if = "Option::is_none")]
    structured: Option<&'a RawValue>,
    #[serde(rename = "resultType", skip_serializing_if = "Option::is_none")]
    result_type: Option<&'a str>,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
}

#[derive(serde::Serialize)]
struct SerdeText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[test]
fn a_tool_s_answer_is_written_byte_for_byte_as_serde_writes_it() {
    let json = r#"{"status":"pending","said":"\"é\"\n\u2028<\\ \u0001","cursor":"00ff"}"#;
    let raw = RawValue::from_string(json.to_string()).unwrap();
    for id in ["7", r#""a \"b\"""#, "null", "-1.5e3"] {
        let id = RawValue::from_string(id.to_string()).unwrap();
        for (stateless, refused) in [(false, false), (true, false), (false, true), (true, true)] {
            let written = match refused {
                false => Written::Result(json.to_string()),
                true => Written::Refusal(json.to_string()),
            };
            let mut result = ToolResult {
                written,
                result_type: None,
                meta: None,
                label: None,
            };
            if stateless {
                result = result.completed();
            }
            let serde = AsSerdeWrites {
                jsonrpc: "2.0",
                id: &id,
                result: SerdeResult {
                    content: [SerdeText {
                        kind: "text",
                        text: json,
                    }],
                    is_error: refused,
                    structured: (!refused).then_some(&*raw),
                    result_type: stateless.then_some("complete"),
                    meta: stateless.then(super::super::modern::server_meta),
                },
            };
            let expected = serde_json::to_string(&serde).unwrap();
            let answered = String::from_utf8(result.answered(&id)).unwrap();
            assert_eq!(answered, expected);
        }
    }
}
