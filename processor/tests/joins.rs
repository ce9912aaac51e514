//! Join semantics against hand-computed expectations.

use bytes::Bytes;
use eddy_processor::{
    Collector, Event, JoinType, Operator, TableJoin, TableJoinSpec, Value, WindowJoin,
    WindowJoinSpec, WindowKind,
};

fn ev(input: usize, id: i64, tag: &str, ts: i64) -> Event {
    Event::new(
        Value::object([("id", Value::Int(id)), ("tag", Value::str(tag))]),
        ts,
    )
    .from_input(input)
}

fn join(kind: JoinType) -> WindowJoin {
    WindowJoin::new(WindowJoinSpec {
        window: WindowKind::Tumbling { size: 10 },
        left_input: 0,
        right_input: 1,
        left_key: vec!["id".into()],
        right_key: vec!["id".into()],
        join_type: kind,
    })
    .expect("valid")
}

/// (window_start, left tag, right tag or "-") per output.
fn pairs(out: &mut Collector) -> Vec<(i64, String, String)> {
    out.take()
        .into_iter()
        .map(|e| {
            let v = &e.value;
            let tag = |side: &str| {
                v.get(side)
                    .and_then(|s| s.get("tag"))
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string()
            };
            (
                v.get("window_start").and_then(Value::as_i64).unwrap_or(-1),
                tag("left"),
                tag("right"),
            )
        })
        .collect()
}

fn p(s: i64, l: &str, r: &str) -> (i64, String, String) {
    (s, l.into(), r.into())
}

#[test]
fn window_join_pairs_equal_keys_in_the_same_window_when_it_fires() {
    let mut j = join(JoinType::Inner);
    let mut out = Collector::default();
    j.process(ev(0, 1, "a", 1), &mut out);
    j.process(ev(1, 1, "x", 5), &mut out);
    j.process(ev(1, 1, "y", 9), &mut out);
    j.process(ev(1, 2, "z", 3), &mut out); // no left partner
    j.process(ev(0, 1, "b", 12), &mut out); // next window, no right partner
    j.process(ev(1, 1, "w", 15), &mut out);
    j.process(ev(0, 1, "c", 16), &mut out);
    assert!(out.take().is_empty(), "nothing before the watermark");
    j.on_watermark(9, &mut out);
    assert_eq!(pairs(&mut out), vec![p(0, "a", "x"), p(0, "a", "y")]);
    j.on_watermark(30, &mut out);
    assert_eq!(pairs(&mut out), vec![p(10, "b", "w"), p(10, "c", "w")]);
    j.process(ev(0, 1, "late", 2), &mut out);
    assert_eq!(j.late_records(), 1);
}

#[test]
fn left_outer_window_join_emits_unmatched_left_events() {
    let mut j = join(JoinType::LeftOuter);
    let mut out = Collector::default();
    j.process(ev(0, 1, "a", 1), &mut out);
    j.process(ev(0, 2, "b", 2), &mut out);
    j.process(ev(1, 2, "x", 3), &mut out);
    j.on_watermark(100, &mut out);
    assert_eq!(pairs(&mut out), vec![p(0, "a", "-"), p(0, "b", "x")]);
}

#[test]
fn window_join_state_survives_snapshot_and_restore() {
    let mut a = join(JoinType::Inner);
    let mut out = Collector::default();
    a.process(ev(0, 1, "a", 1), &mut out);
    let snap = a.snapshot().expect("snapshot").expect("stateful");
    let mut b = join(JoinType::Inner);
    b.restore(&snap).expect("restore");
    b.process(ev(1, 1, "x", 2), &mut out);
    b.on_watermark(9, &mut out);
    assert_eq!(pairs(&mut out), vec![p(0, "a", "x")]);
}

fn table(kind: JoinType) -> TableJoin {
    TableJoin::new(TableJoinSpec {
        stream_input: 0,
        table_input: 1,
        table_key: vec![],
        stream_key: vec!["id".into()],
        output_field: "info".into(),
        join_type: kind,
    })
    .expect("valid")
}

fn row(key: &str, v: Value, ts: i64) -> Event {
    let mut e = Event::new(v, ts).from_input(1);
    e.key = Some(Bytes::copy_from_slice(key.as_bytes()));
    e
}

fn info(e: &Event) -> Option<&Value> {
    e.value.get("info")
}

#[test]
fn table_join_uses_the_version_valid_at_event_time_once_the_watermark_passes() {
    let mut j = table(JoinType::Inner);
    let mut out = Collector::default();
    j.process(row("1", Value::str("v1"), 0), &mut out);
    j.process(row("1", Value::str("v2"), 10), &mut out);
    j.process(row("2", Value::str("other"), 0), &mut out);
    // Stream events are read before a later table update; they still get the version of
    // their own time.
    j.process(ev(0, 1, "at5", 5), &mut out);
    j.process(ev(0, 1, "at12", 12), &mut out);
    j.process(row("1", Value::Null, 20), &mut out); // deleted from 20 on
    j.process(ev(0, 1, "at25", 25), &mut out);
    j.process(ev(0, 2, "other", 25), &mut out);
    assert!(out.take().is_empty(), "nothing before the watermark");
    j.on_watermark(30, &mut out);
    let got: Vec<(String, Option<Value>)> = out
        .take()
        .into_iter()
        .map(|e| {
            (
                e.value
                    .get("tag")
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                info(&e).cloned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("at5".to_string(), Some(Value::str("v1"))),
            ("at12".to_string(), Some(Value::str("v2"))),
            ("other".to_string(), Some(Value::str("other"))),
        ],
        "at25 finds key 1 deleted: an inner join drops it"
    );
    let mut outer = table(JoinType::LeftOuter);
    outer.process(ev(0, 3, "s3", 7), &mut out);
    outer.on_watermark(7, &mut out);
    assert_eq!(out.take().pop().as_ref().and_then(info), Some(&Value::Null));
}

#[test]
fn table_join_passes_other_inputs_through_and_restores_pending_events() {
    let mut a = table(JoinType::Inner);
    let mut out = Collector::default();
    a.process(ev(2, 7, "third input", 1), &mut out);
    assert_eq!(out.take().len(), 1, "not part of the join: passed through");
    a.process(
        row("9", Value::object([("name", Value::str("nine"))]), 0),
        &mut out,
    );
    a.process(ev(0, 9, "s", 1), &mut out);
    let snap = a.snapshot().expect("snapshot").expect("stateful");
    let mut b = table(JoinType::Inner);
    b.restore(&snap).expect("restore");
    b.on_watermark(5, &mut out);
    let e = out.take().pop().expect("joined after restore");
    assert_eq!(e.value.path("info.name"), Some(&Value::str("nine")));
}

#[test]
fn invalid_joins_are_refused() {
    let e = WindowJoin::new(WindowJoinSpec {
        window: WindowKind::Session { gap: 5 },
        left_input: 0,
        right_input: 1,
        left_key: vec!["id".into()],
        right_key: vec!["id".into()],
        join_type: JoinType::Inner,
    })
    .expect_err("session join refused");
    assert!(e.to_string().contains("tumbling or hopping"), "{e}");
    let e = WindowJoin::new(WindowJoinSpec {
        window: WindowKind::Tumbling { size: 5 },
        left_input: 0,
        right_input: 0,
        left_key: vec!["id".into()],
        right_key: vec!["id".into()],
        join_type: JoinType::Inner,
    })
    .expect_err("same input refused");
    assert!(e.to_string().contains("different inputs"), "{e}");
}
