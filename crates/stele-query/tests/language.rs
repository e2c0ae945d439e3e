//! The query language: what parses into what, where errors point, and what a query means
//! for events.

use proptest::prelude::*;
use serde_json::json;
use stele_core::{Event, Timestamp};
use stele_query::{Compare, Field, Match, Query, Value, matches, parse};

fn event(value: serde_json::Value) -> Event {
    serde_json::from_value(value).unwrap()
}

fn column(text: &str) -> usize {
    parse(text).unwrap_err().column
}

#[test]
fn terms_combine_with_and_or_not_and_parentheses() {
    let q = parse("action:user.login outcome:failure OR NOT level:>=warn").unwrap();
    let expected = Query::Or(vec![
        Query::And(vec![
            Query::Field(Field::Action, Match::Is(Value::Str("user.login".into()))),
            Query::Field(Field::Outcome, Match::Is(Value::Str("failure".into()))),
        ]),
        Query::Not(Box::new(Query::Field(
            Field::Level,
            Match::Compare(Compare::Ge, Value::Level(stele_core::Level::Warn)),
        ))),
    ]);
    assert_eq!(q, expected);
    assert_eq!(
        parse("a AND (b OR -c)").unwrap(),
        Query::And(vec![
            Query::Text {
                words: vec!["a".into()],
                prefix: false
            },
            Query::Or(vec![
                Query::Text {
                    words: vec!["b".into()],
                    prefix: false
                },
                Query::Not(Box::new(Query::Text {
                    words: vec!["c".into()],
                    prefix: false
                })),
            ]),
        ])
    );
    assert_eq!(parse("   ").unwrap(), Query::All);
}

#[test]
fn values_are_typed_by_their_field() {
    assert_eq!(
        parse("duration_ms:>500").unwrap(),
        Query::Field(
            Field::DurationMs,
            Match::Compare(Compare::Gt, Value::Number(500.0))
        )
    );
    assert_eq!(
        parse("action:user.*").unwrap(),
        Query::Field(Field::Action, Match::Prefix("user.".into()))
    );
    let Query::Field(Field::OccurredAt, Match::Range { from, to }) =
        parse("occurred_at:[2026-01-01 TO 2026-02-01}").unwrap()
    else {
        panic!("not a range")
    };
    let t = |s: &str| Value::Time(Timestamp::parse(s).unwrap());
    assert_eq!(from, Some((t("2026-01-01T00:00:00Z"), true)));
    assert_eq!(to, Some((t("2026-02-01T00:00:00Z"), false)));
    assert_eq!(
        parse("actor.ip:10.0.0.0/8").unwrap(),
        Query::Field(Field::ActorIp, Match::Cidr("10.0.0.0".parse().unwrap(), 8))
    );
    assert_eq!(
        parse("details.risk.score:[0.5 TO *]").unwrap(),
        Query::Field(
            Field::Details(vec!["risk".into(), "score".into()]),
            Match::Range {
                from: Some((Value::Number(0.5), true)),
                to: None
            }
        )
    );
    assert_eq!(
        parse("resource.id:\"doc 42\"").unwrap(),
        Query::Field(Field::ResourceId, Match::Is(Value::Str("doc 42".into())))
    );
    assert_eq!(
        parse("\"Connection Refused\"").unwrap(),
        Query::Text {
            words: vec!["connection".into(), "refused".into()],
            prefix: false
        }
    );
}

#[test]
fn errors_name_the_column() {
    assert_eq!(column("colour:red"), 1);
    assert_eq!(column("action:a (outcome:failure"), 10);
    assert_eq!(column("action:a )"), 10);
    assert_eq!(column("outcome:fail"), 9);
    assert_eq!(column("duration_ms:>fast"), 14);
    assert_eq!(column("level:[info TO"), 7);
    assert_eq!(column("action:>b"), 8);
    assert_eq!(column("actor.ip:10.0.0.0/33"), 10);
    assert_eq!(column("a OR"), 5);
    assert_eq!(column("x \"open"), 3);
    assert_eq!(column("occurred_at:yesterday"), 13);
    let e = parse("outcome:fail").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("column 9: `outcome` takes one of success, failure"),
        "{e}"
    );
    assert!(parse(&"(".repeat(40)).is_err());
    assert!(parse(&"a ".repeat(3000)).is_err());
}

#[test]
fn queries_mean_what_they_say_on_events() {
    let login = event(json!({
        "action": "user.login", "outcome": "failure", "level": "warn", "seq": 3,
        "occurred_at": "2026-01-15T10:00:00Z", "duration_ms": 700,
        "actor": {"id": "u-1", "type": "user", "ip": "10.1.2.3"},
        "error": {"code": "E_AUTH", "message": "Password did not match"},
        "details": {"risk": {"score": 0.8}, "model": "gpt-x", "tags": ["vip", "eu"], "flag": true}
    }));
    let yes = [
        "action:user.login",
        "action:user.*",
        "outcome:failure AND level:>=warn",
        "level:[info TO error]",
        "duration_ms:>500 duration_ms:<=700",
        "occurred_at:2026-01-15",
        "occurred_at:[2026-01-01 TO 2026-01-31]",
        "occurred_at:>2026-01-15T09:59:59Z",
        "actor.ip:10.0.0.0/8",
        "actor.ip:10.1.2.3",
        "error.code:E_AUTH",
        "error.message:password",
        "error.message:\"did not match\"",
        "password",
        "PASS*",
        "\"did not\"",
        "details.risk.score:>0.5",
        "details.model:gpt-x",
        "details.model:gpt*",
        "details.tags:eu",
        "details.flag:true",
        "vip",
        "NOT outcome:success",
        "seq:3",
        "-actor.type:service",
    ];
    for q in yes {
        assert!(matches(&parse(q).unwrap(), &login), "{q} should match");
    }
    let no = [
        "action:user.logout",
        "outcome:success",
        "level:>warn",
        "duration_ms:<500",
        "occurred_at:2026-01-16",
        "occurred_at:{2026-01-15T10:00:00Z TO *]",
        "actor.ip:192.168.0.0/16",
        "error.message:\"not did\"",
        "logout",
        "details.risk.score:<0.5",
        "details.missing:x",
        "resource.id:anything",
        "actor.ip:::1",
    ];
    for q in no {
        assert!(!matches(&parse(q).unwrap(), &login), "{q} should not match");
    }
    // An IPv6 block.
    let v6 = event(json!({"action": "a.b", "actor": {"ip": "2001:db8::7"}}));
    assert!(matches(&parse("actor.ip:2001:db8::/32").unwrap(), &v6));
    assert!(!matches(&parse("actor.ip:10.0.0.0/8").unwrap(), &v6));
}

proptest! {
    /// No text makes the parser panic, and an error points inside the text (or just past
    /// its end).
    #[test]
    fn any_text_parses_or_names_a_column(text in "[ a-z:.()\"*<>=\\[\\]{}0-9/\\\\-]{0,60}|\\PC{0,40}") {
        if let Err(e) = parse(&text) {
            prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e} in {text:?}");
        }
    }
}
