//! Watermarks: per source partition `max event time seen - delay`; the pipeline's watermark
//! is the minimum over partitions that are not idle, and never goes back.
//!
//! A partition that has produced nothing yet holds the watermark back (its first events may be
//! old) until it has been silent for `idle_timeout`; an idle partition stops holding it back
//! until it produces again. If every partition is idle the watermark stays where it is.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct PartitionClock {
    /// Max event time seen (None before the first event).
    max_ts: Option<i64>,
    /// When this partition last produced an event (or when tracking began).
    last_active: Instant,
}

/// Tracks the watermark of a set of source partitions.
#[derive(Debug)]
pub struct WatermarkTracker {
    delay: i64,
    idle_timeout: Option<Duration>,
    parts: Vec<PartitionClock>,
    current: Option<i64>,
}

impl WatermarkTracker {
    /// `partitions` inputs, allowed out-of-orderness `delay` ms, and an optional idle timeout.
    pub fn new(
        partitions: usize,
        delay: i64,
        idle_timeout: Option<Duration>,
        now: Instant,
    ) -> Self {
        WatermarkTracker {
            delay,
            idle_timeout,
            parts: vec![
                PartitionClock {
                    max_ts: None,
                    last_active: now,
                };
                partitions
            ],
            current: None,
        }
    }

    /// Restores the watermark from a checkpoint (the clocks restart from it).
    pub fn restore(&mut self, watermark: Option<i64>, per_partition: &[Option<i64>]) {
        self.current = watermark;
        for (p, ts) in self.parts.iter_mut().zip(per_partition) {
            p.max_ts = *ts;
        }
    }

    /// Max event time per partition (checkpointed with the watermark).
    pub fn partition_max(&self) -> Vec<Option<i64>> {
        self.parts.iter().map(|p| p.max_ts).collect()
    }

    /// An event with time `ts` arrived on `partition`.
    pub fn observe(&mut self, partition: usize, ts: i64, now: Instant) {
        if let Some(p) = self.parts.get_mut(partition) {
            p.max_ts = Some(p.max_ts.map_or(ts, |m| m.max(ts)));
            p.last_active = now;
        }
    }

    /// The current watermark if it advanced since the last call, recomputed at `now`.
    pub fn advance(&mut self, now: Instant) -> Option<i64> {
        let mut min: Option<i64> = None;
        let mut any_active = false;
        for p in &self.parts {
            let idle = self
                .idle_timeout
                .is_some_and(|t| now.saturating_duration_since(p.last_active) >= t);
            if idle {
                continue;
            }
            any_active = true;
            match p.max_ts {
                // An active partition with no events yet holds everything back.
                None => return None,
                Some(ts) => min = Some(min.map_or(ts, |m: i64| m.min(ts))),
            }
        }
        if !any_active {
            return None;
        }
        let wm = min?.saturating_sub(self.delay);
        if self.current.is_some_and(|c| c >= wm) {
            return None;
        }
        self.current = Some(wm);
        Some(wm)
    }

    /// Ends the input: the watermark jumps to the end of time, so every window fires.
    pub fn finish(&mut self) -> Option<i64> {
        if self.current == Some(i64::MAX) {
            return None;
        }
        self.current = Some(i64::MAX);
        Some(i64::MAX)
    }

    /// The watermark last returned.
    pub fn current(&self) -> Option<i64> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions_minus_delay_and_monotonic() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(2, 100, None, t0);
        w.observe(0, 1_000, t0);
        assert_eq!(w.advance(t0), None, "partition 1 has produced nothing yet");
        w.observe(1, 500, t0);
        assert_eq!(w.advance(t0), Some(400));
        w.observe(1, 300, t0); // out of order: max stays 500
        assert_eq!(w.advance(t0), None);
        w.observe(1, 2_000, t0);
        assert_eq!(w.advance(t0), Some(900));
    }

    #[test]
    fn idle_partition_stops_holding_back_and_rejoins() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(1);
        let mut w = WatermarkTracker::new(2, 0, Some(idle), t0);
        w.observe(0, 5_000, t0);
        assert_eq!(w.advance(t0), None);
        let later = t0 + Duration::from_millis(1_500);
        w.observe(0, 6_000, later);
        assert_eq!(w.advance(later), Some(6_000), "partition 1 is idle");
        w.observe(1, 7_000, later);
        w.observe(0, 8_000, later);
        assert_eq!(w.advance(later), Some(7_000), "partition 1 is back");
    }
}
