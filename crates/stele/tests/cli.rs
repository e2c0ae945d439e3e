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
        &["keys"],
        &["keys", "generate"],
        &["keys", "create"],
        &["keys", "list"],
        &["keys", "revoke"],
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

/// What `stele proof verify` says of a good and of an altered proof (ids redacted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_verify_output_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&Backend::Sqlite, dir.path(), None);
    let receipts = ingest(
        &server,
        &[sample_event(0), sample_event(1), sample_event(2)],
    )
    .await;
    let id = receipts[1]["id"].as_str().unwrap().to_string();
    let (status, answer) = get(&server, &format!("/v1/events/{id}?proof=true")).await;
    assert_eq!(status, 200);
    server.stop();
    let key = verifier_key(dir.path());
    let good = dir.path().join("good.json");
    std::fs::write(&good, answer.to_string()).unwrap();
    let mut altered = answer.clone();
    altered["event"]["action"] = serde_json::json!("config.change");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, altered.to_string()).unwrap();
    let ok = stele(&["proof", "verify", "--key", &key, path(&good)]);
    let failed = stele(&["proof", "verify", "--key", &key, path(&bad)]);
    assert_eq!((ok.code, failed.code), (0, 1));
    let text = format!(
        "$ stele proof verify good.json\n{}$ stele proof verify bad.json\n{}",
        ok.stdout, failed.stderr
    )
    .replace(&id, "[id]");
    insta::assert_snapshot!("proof_verify", text);
}
