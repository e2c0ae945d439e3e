//! The OpenAPI document is public API: any change to it shows as a diff of the snapshot.

#[test]
fn the_openapi_document_is_unchanged() {
    insta::assert_snapshot!("openapi", stele_server::http::openapi_json());
}

/// Operation ids are unique and descriptive (generators name functions after them), and
/// every enum lists its wire names.
#[test]
fn operation_ids_are_unique_and_enums_are_wire_names() {
    let doc: serde_json::Value =
        serde_json::from_str(&stele_server::http::openapi_json()).expect("JSON");
    let mut ids = Vec::new();
    for (_, methods) in doc["paths"].as_object().expect("paths") {
        for (_, op) in methods.as_object().expect("methods") {
            ids.push(
                op["operationId"]
                    .as_str()
                    .expect("an operationId")
                    .to_string(),
            );
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(ids.iter().all(|id| id.contains('_')), "{ids:?}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["StepStatus"]["enum"],
        serde_json::json!(["started", "in_progress", "completed", "failed"])
    );
    assert_eq!(
        schemas["ActorType"]["enum"],
        serde_json::json!(["user", "service", "api_key", "system"])
    );
}
