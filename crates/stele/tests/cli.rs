//! The command line is public API: the help of every command is held in a snapshot, so
//! that a change to a flag or its description shows as a diff.

mod common;

use common::*;

#[test]
fn help_of_every_command_is_unchanged() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["send"],
        &["query"],
        &["reindex"],
        &["migrate"],
        &["keys", "public"],
        &["keys", "generate"],
        &["verify"],
        &["proof", "verify"],
        &["openapi"],
    ];
    let mut all = String::new();
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let run = stele(&args);
        run.assert_ok();
        all.push_str(&format!("$ stele {}\n{}\n", args.join(" "), run.stdout));
    }
    insta::assert_snapshot!("help", all);
}

/// `stele openapi` prints the document the server serves.
#[test]
fn openapi_prints_the_served_document() {
    let run = stele(&["openapi"]);
    run.assert_ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/events"]["post"]["operationId"] == "ingest_events");
}
