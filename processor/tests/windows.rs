//! Window semantics against hand-computed expectations, driving the operator directly.

use eddy_processor::{
    AggSpec, Collector, Event, LatePolicy, Operator, Value, WindowAggregate, WindowKind, WindowSpec,
};

fn ev(key: &str, n: i64, ts: i64) -> Event {
    Event::new(
        Value::object([("k", Value::str(key)), ("n", Value::Int(n))]),
        ts,
    )
}

fn op(kind: WindowKind, lateness: i64, late: LatePolicy) -> WindowAggregate {
    WindowAggregate::new(WindowSpec {
        kind,
        group_by: vec!["k".into()],
        aggregates: vec![AggSpec::count("cnt"), AggSpec::sum("total", "n")],
        allowed_lateness: lateness,
        late,
    })
    .expect("valid spec")
}

/// (key, window_start, window_end, count, sum) of each output, in emission order.
fn rows(out: &mut Collector) -> Vec<(String, i64, i64, i64, i64)> {
    out.take()
        .into_iter()
        .map(|e| {
            let v = &e.value;
            (
                v.get("k")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                v.get("window_start").and_then(Value::as_i64).unwrap_or(-1),
                v.get("window_end").and_then(Value::as_i64).unwrap_or(-1),
                v.get("cnt").and_then(Value::as_i64).unwrap_or(-1),
                v.get("total").and_then(Value::as_i64).unwrap_or(-1),
            )
        })
        .collect()
}

fn r(k: &str, s: i64, e: i64, c: i64, t: i64) -> (String, i64, i64, i64, i64) {
    (k.to_string(), s, e, c, t)
}

#[test]
fn tumbling_fires_once_when_the_watermark_passes_the_end() {
    let mut w = op(WindowKind::Tumbling { size: 10 }, 0, LatePolicy::Drop);
    let mut out = Collector::default();
    for (k, n, ts) in [
        ("a", 1, 0),
        ("b", 2, 3),
        ("a", 3, 9),
        ("a", 4, 10),
        ("b", 5, 25),
    ] {
        w.process(ev(k, n, ts), &mut out);
    }
    assert!(
        rows(&mut out).is_empty(),
        "nothing fires before a watermark"
    );
    w.on_watermark(8, &mut out);
    assert!(rows(&mut out).is_empty(), "[0,10) is still open at 8");
    w.on_watermark(9, &mut out);
    assert_eq!(
        rows(&mut out),
        vec![r("a", 0, 10, 2, 4), r("b", 0, 10, 1, 2)]
    );
    w.on_watermark(9, &mut out);
    w.on_watermark(19, &mut out);
    assert_eq!(rows(&mut out), vec![r("a", 10, 20, 1, 4)]);
    w.on_watermark(100, &mut out);
    assert_eq!(rows(&mut out), vec![r("b", 20, 30, 1, 5)]);
    // The output record's timestamp is the window's last millisecond and its key the group.
    w.process(ev("c", 1, 200), &mut out);
    w.on_watermark(210, &mut out);
    let e = out.take().pop().expect("one");
    assert_eq!(e.timestamp, 209);
    assert_eq!(e.key.as_deref(), Some(&b"c"[..]));
}

#[test]
fn hopping_puts_each_event_in_size_over_slide_windows() {
    let mut w = op(
        WindowKind::Hopping { size: 10, slide: 5 },
        0,
        LatePolicy::Drop,
    );
    let mut out = Collector::default();
    w.process(ev("a", 1, 7), &mut out); // [0,10) and [5,15)
    w.process(ev("a", 10, 12), &mut out); // [5,15) and [10,20)
    w.on_watermark(100, &mut out);
    assert_eq!(
        rows(&mut out),
        vec![
            r("a", 0, 10, 1, 1),
            r("a", 5, 15, 2, 11),
            r("a", 10, 20, 1, 10)
        ]
    );
    // Negative timestamps align to the epoch too.
    let mut w = op(
        WindowKind::Hopping { size: 10, slide: 5 },
        0,
        LatePolicy::Drop,
    );
    w.process(ev("a", 1, -3), &mut out);
    w.on_watermark(100, &mut out);
    assert_eq!(
        rows(&mut out),
        vec![r("a", -10, 0, 1, 1), r("a", -5, 5, 1, 1)]
    );
}

#[test]
fn cumulating_windows_grow_by_step_up_to_size() {
    let mut w = op(
        WindowKind::Cumulating { size: 10, step: 5 },
        0,
        LatePolicy::Drop,
    );
    let mut out = Collector::default();
    w.process(ev("a", 1, 3), &mut out); // [0,5) and [0,10)
    w.process(ev("a", 10, 7), &mut out); // [0,10)
    w.process(ev("a", 100, 12), &mut out); // [10,15) and [10,20)
    w.on_watermark(100, &mut out);
    assert_eq!(
        rows(&mut out),
        vec![
            r("a", 0, 5, 1, 1),
            r("a", 0, 10, 2, 11),
            r("a", 10, 15, 1, 100),
            r("a", 10, 20, 1, 100)
        ]
    );
}

#[test]
fn sessions_merge_when_they_touch_and_split_on_gaps() {
    let mut w = op(WindowKind::Session { gap: 10 }, 0, LatePolicy::Drop);
    let mut out = Collector::default();
    w.process(ev("a", 1, 0), &mut out); // [0,10)
    w.process(ev("a", 2, 25), &mut out); // [25,35)
    w.process(ev("b", 7, 5), &mut out); // b: [5,15)
    w.process(ev("a", 4, 15), &mut out); // [15,25) touches [25,35): [15,35)
    w.on_watermark(14, &mut out);
    assert_eq!(
        rows(&mut out),
        vec![r("a", 0, 10, 1, 1), r("b", 5, 15, 1, 7)]
    );
    // [0,10) has fired and is gone; a new event at 9 opens [9,19), which touches [15,35).
    w.process(ev("a", 8, 9), &mut out);
    w.on_watermark(40, &mut out);
    assert_eq!(rows(&mut out), vec![r("a", 9, 35, 3, 14)]);
}

#[test]
fn late_events_are_dropped_or_routed_and_counted() {
    let mut w = op(
        WindowKind::Tumbling { size: 10 },
        0,
        LatePolicy::SideOutput("late".into()),
    );
    let mut out = Collector::default();
    w.process(ev("a", 1, 5), &mut out);
    w.on_watermark(20, &mut out);
    assert_eq!(rows(&mut out), vec![r("a", 0, 10, 1, 1)]);
    w.process(ev("a", 2, 9), &mut out);
    assert!(rows(&mut out).is_empty());
    assert_eq!(w.late_records(), 1);
    assert_eq!(out.side_len(), 1);
    let mut d = op(WindowKind::Tumbling { size: 10 }, 0, LatePolicy::Drop);
    d.on_watermark(20, &mut out);
    d.process(ev("a", 2, 9), &mut out);
    assert_eq!(d.late_records(), 1);
    assert_eq!(out.side_len(), 1, "dropped, not routed");
}

#[test]
fn allowed_lateness_updates_and_re_emits_until_the_horizon() {
    let mut w = op(WindowKind::Tumbling { size: 10 }, 5, LatePolicy::Drop);
    let mut out = Collector::default();
    w.process(ev("a", 1, 1), &mut out);
    w.on_watermark(10, &mut out);
    assert_eq!(rows(&mut out), vec![r("a", 0, 10, 1, 1)]);
    w.process(ev("a", 2, 2), &mut out); // within lateness: update
    assert_eq!(rows(&mut out), vec![r("a", 0, 10, 2, 3)]);
    w.on_watermark(14, &mut out); // 9 + 5 = 14: state purged
    assert!(rows(&mut out).is_empty(), "no second firing at the horizon");
    w.process(ev("a", 4, 3), &mut out);
    assert!(rows(&mut out).is_empty());
    assert_eq!(w.late_records(), 1);
}

#[test]
fn many_groups_fire_in_window_end_then_key_order_whether_windows_are_kept_or_purged() {
    // Lateness 0 purges a window as it fires (its cells move into the results); lateness 50
    // keeps it (the results are copies). Both emit the same rows, in the same order.
    for lateness in [0, 50] {
        let mut w = op(
            WindowKind::Tumbling { size: 10 },
            lateness,
            LatePolicy::Drop,
        );
        let mut out = Collector::default();
        // Keys arrive in reverse order, each once per window, three windows.
        for start in [0, 10, 20] {
            for k in (0..200).rev() {
                w.process(ev(&format!("k{k:03}"), k, start + k % 10), &mut out);
            }
        }
        w.on_watermark(25, &mut out);
        let expected: Vec<_> = [0, 10]
            .into_iter()
            .flat_map(|s| (0..200).map(move |k| r(&format!("k{k:03}"), s, s + 10, 1, k)))
            .collect();
        assert_eq!(rows(&mut out), expected, "lateness {lateness}");
        w.process(ev("k007", 1, 5), &mut out);
        if lateness == 0 {
            assert!(rows(&mut out).is_empty(), "[0,10) is gone");
            assert_eq!(w.late_records(), 1);
        } else {
            assert_eq!(rows(&mut out), vec![r("k007", 0, 10, 2, 8)]);
            assert_eq!(w.late_records(), 0);
        }
        w.on_watermark(100, &mut out);
        let last = rows(&mut out);
        assert_eq!(last.len(), 200, "lateness {lateness}: [20,30) fires once");
        assert!(last.windows(2).all(|p| p[0].0 < p[1].0), "sorted by key");
    }
}

#[test]
fn out_of_order_input_within_the_delay_is_counted_in_its_window() {
    // Watermark = max - delay: with delay 5, events up to 5 ms out of order are on time.
    let mut w = op(WindowKind::Tumbling { size: 10 }, 0, LatePolicy::Drop);
    let mut out = Collector::default();
    let mut max = i64::MIN;
    for (n, ts) in [(1, 3), (2, 12), (3, 8), (4, 14), (5, 9), (6, 21), (7, 4)] {
        w.process(ev("a", n, ts), &mut out);
        max = max.max(ts);
        w.on_watermark(max - 5, &mut out);
    }
    // 8 arrives at watermark 7: on time. 14 moves the watermark to 9 = the last ms of
    // [0,10), which fires with {3, 8}; so 9 (at watermark 9) and 4 (at 16) are late.
    w.on_watermark(100, &mut out);
    assert_eq!(
        rows(&mut out),
        vec![
            r("a", 0, 10, 2, 4),
            r("a", 10, 20, 2, 6),
            r("a", 20, 30, 1, 6)
        ]
    );
    assert_eq!(w.late_records(), 2);
}

#[test]
fn snapshot_and_restore_continue_exactly() {
    let mut a = op(WindowKind::Tumbling { size: 10 }, 0, LatePolicy::Drop);
    let mut out = Collector::default();
    a.process(ev("a", 1, 1), &mut out);
    a.process(ev("b", 2, 11), &mut out);
    a.on_watermark(9, &mut out);
    let _ = rows(&mut out);
    let snap = a.snapshot().expect("snapshot").expect("stateful");
    let mut b = op(WindowKind::Tumbling { size: 10 }, 0, LatePolicy::Drop);
    b.restore(&snap).expect("restore");
    for w in [&mut a, &mut b] {
        w.process(ev("b", 3, 15), &mut out);
        w.on_watermark(30, &mut out);
    }
    let all = rows(&mut out);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], all[1]);
    assert_eq!(all[0], r("b", 10, 20, 2, 5));
}

#[test]
fn running_aggregate_emits_an_update_per_event() {
    let mut w = op(WindowKind::Global, 0, LatePolicy::Drop);
    let mut out = Collector::default();
    w.process(ev("a", 1, 1), &mut out);
    w.process(ev("a", 2, 2), &mut out);
    w.process(ev("b", 5, 3), &mut out);
    assert_eq!(
        rows(&mut out),
        vec![
            r("a", -1, -1, 1, 1),
            r("a", -1, -1, 2, 3),
            r("b", -1, -1, 1, 5)
        ]
    );
}

#[test]
fn invalid_windows_are_refused() {
    for kind in [
        WindowKind::Tumbling { size: 0 },
        WindowKind::Hopping { size: 10, slide: 3 },
        WindowKind::Session { gap: -1 },
        WindowKind::Cumulating { size: 10, step: 3 },
    ] {
        let e = WindowAggregate::new(WindowSpec {
            kind,
            group_by: vec![],
            aggregates: vec![AggSpec::count("c")],
            allowed_lateness: 0,
            late: LatePolicy::Drop,
        })
        .expect_err("must fail");
        assert!(e.to_string().starts_with("invalid pipeline"), "{e}");
    }
}
