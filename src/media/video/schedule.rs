//! The sample schedule: which decoded frames become samples (and for how many sample times), and
//! which packets the decoder may drop. Pure timestamp arithmetic, tested without FFmpeg.

use std::collections::BTreeSet;

/// Which frames become samples, and which packets may be dropped by the decoder.
///
/// Sample `k` is the first frame whose presentation time is at or after `k / rate` (seconds from
/// the first frame). A packet must be fully decoded when it could be that frame for some pending
/// sample `j`: its time `p ≥ t(j)` with `j` the last sample time at or before `p`, and no packet
/// already sent for full decoding has a time in `[t(j), p)`. Everything else may be dropped if the
/// decoder finds it is not a reference frame. Decoders output frames in presentation order, so
/// this is exact: skipping never changes which frame a sample gets.
#[derive(Debug, Clone)]
pub(crate) struct SampleSchedule {
    /// Seconds per sample.
    interval: f64,
    /// Seconds per timestamp tick.
    tick: f64,
    /// Timestamp of the first frame: sample times count from it.
    origin: Option<i64>,
    /// Index of the first sample not produced yet.
    next: i64,
    /// Samples with an index at or past this lie beyond the duration cap.
    end: i64,
    /// Timestamps of packets sent for full decoding that may still matter.
    decodable: BTreeSet<i64>,
}

/// What to do with a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameRole {
    /// Before the next sample time (or carries no timestamp): not a sample.
    Skip,
    /// A sample standing for this many sample times.
    Sample { slots: u32 },
}

/// Bound on remembered packet timestamps (a long gap between samples with few frames decoded
/// cannot grow it without limit).
const MAX_REMEMBERED_PACKETS: usize = 4096;

impl SampleSchedule {
    pub(crate) fn new(sample_rate: f64, time_base: f64, max_duration_s: f64) -> Self {
        let end = (max_duration_s * sample_rate - 1e-9).ceil().max(0.0) as i64;
        SampleSchedule {
            interval: 1.0 / sample_rate,
            tick: time_base,
            origin: None,
            next: 0,
            end,
            decodable: BTreeSet::new(),
        }
    }

    /// Timestamp (ticks) of sample `k`: the smallest tick at or after `k / rate` seconds.
    fn sample_ts(&self, origin: i64, k: i64) -> i64 {
        origin + ((k as f64 * self.interval) / self.tick - 1e-6).ceil() as i64
    }

    /// Index of the last sample time at or before `ts`.
    fn slot_at(&self, origin: i64, ts: i64) -> i64 {
        let mut k = (((ts - origin) as f64 * self.tick) / self.interval).floor() as i64;
        while self.sample_ts(origin, k) > ts {
            k -= 1;
        }
        while self.sample_ts(origin, k + 1) <= ts {
            k += 1;
        }
        k
    }

    /// Seconds from the first frame.
    pub(crate) fn seconds(&self, ts: i64) -> f64 {
        (ts - self.origin.unwrap_or(ts)) as f64 * self.tick
    }

    /// Timestamp of the first frame, once known.
    pub(crate) fn origin_ts(&self) -> Option<i64> {
        self.origin
    }

    /// Timestamp of the next sample, once the origin is known.
    pub(crate) fn next_sample_ts(&self) -> Option<i64> {
        self.origin.map(|o| self.sample_ts(o, self.next))
    }

    /// All samples within the duration cap are produced.
    pub(crate) fn past_duration_cap(&self) -> bool {
        self.next >= self.end
    }

    /// Whether the packet with this presentation timestamp must be decoded in full.
    pub(crate) fn needs_full_decode(&mut self, pts: Option<i64>) -> bool {
        let (Some(origin), Some(p)) = (self.origin, pts) else {
            return true;
        };
        if p < self.sample_ts(origin, self.next) {
            return false;
        }
        let j = self.slot_at(origin, p);
        let from = self.sample_ts(origin, j);
        let better_known = self.decodable.range(from..).next().is_some_and(|&m| m <= p);
        if better_known {
            return false;
        }
        if self.decodable.len() >= MAX_REMEMBERED_PACKETS {
            self.decodable.pop_first();
        }
        self.decodable.insert(p);
        true
    }

    /// Decide what a decoded frame (in presentation order) is.
    pub(crate) fn on_frame(&mut self, ts: Option<i64>) -> FrameRole {
        let Some(ts) = ts else { return FrameRole::Skip };
        let origin = *self.origin.get_or_insert(ts);
        if ts < self.sample_ts(origin, self.next) || self.next >= self.end {
            return FrameRole::Skip;
        }
        let last = self.slot_at(origin, ts).min(self.end - 1);
        let slots = (last - self.next + 1) as u32;
        self.next = last + 1;
        let keep_from = self.sample_ts(origin, self.next);
        self.decodable = self.decodable.split_off(&keep_from);
        FrameRole::Sample { slots }
    }

    /// After a seek the decoder starts afresh: earlier decisions no longer hold.
    pub(crate) fn forget_packets(&mut self) {
        self.decodable.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule_25fps() -> SampleSchedule {
        // 2 samples/s, time base 1/12800 (what the mp4 muxer uses at 25 fps), 600 s cap.
        SampleSchedule::new(2.0, 1.0 / 12800.0, 600.0)
    }

    #[test]
    fn samples_are_the_first_frame_at_or_after_each_sample_time() {
        let mut s = schedule_25fps();
        let frame = 512; // ticks per frame at 25 fps
        let mut taken = vec![];
        for n in 0..50 {
            if let FrameRole::Sample { slots } = s.on_frame(Some(1000 + n * frame)) {
                assert_eq!(slots, 1);
                taken.push(n);
            }
        }
        // 0.5 s = frame 12.5 → frame 13 (0.52 s); 1.0 s = frame 25; 1.5 s → 38.
        assert_eq!(taken, vec![0, 13, 25, 38]);
    }

    #[test]
    fn a_frame_covering_several_sample_times_says_so() {
        let mut s = SampleSchedule::new(2.0, 0.001, 600.0);
        assert_eq!(s.on_frame(Some(0)), FrameRole::Sample { slots: 1 });
        // Next frame 1.7 s later: it is the first frame at or after 0.5, 1.0 and 1.5.
        assert_eq!(s.on_frame(Some(1700)), FrameRole::Sample { slots: 3 });
        assert_eq!(s.on_frame(Some(1900)), FrameRole::Skip);
        assert_eq!(s.on_frame(Some(2000)), FrameRole::Sample { slots: 1 });
    }

    #[test]
    fn the_duration_cap_bounds_samples_and_slots() {
        let mut s = SampleSchedule::new(2.0, 0.001, 1.2);
        assert_eq!(s.on_frame(Some(0)), FrameRole::Sample { slots: 1 });
        // Slots at 0.5 and 1.0 are within the cap, 1.5 and 2.0 are not.
        assert_eq!(s.on_frame(Some(2000)), FrameRole::Sample { slots: 2 });
        assert!(s.past_duration_cap());
        assert_eq!(s.on_frame(Some(2500)), FrameRole::Skip);
    }

    #[test]
    fn only_packets_that_can_be_samples_are_fully_decoded() {
        let mut s = schedule_25fps();
        assert!(
            s.needs_full_decode(Some(0)),
            "origin unknown: decode everything"
        );
        assert_eq!(s.on_frame(Some(0)), FrameRole::Sample { slots: 1 });
        // Decode order of a B-pyramid group: P(16) Bref(14) b(13) b(15), frames of 512 ticks;
        // sample 1 is at 0.5 s = 6400 ticks = frame 12.5.
        let f = |n: i64| Some(n * 512);
        assert!(!s.needs_full_decode(f(3)), "before the next sample time");
        assert!(
            s.needs_full_decode(f(16)),
            "first packet past the sample time"
        );
        assert!(
            s.needs_full_decode(f(14)),
            "earlier than the best candidate"
        );
        assert!(
            s.needs_full_decode(f(13)),
            "earlier still: this is the sample"
        );
        assert!(
            !s.needs_full_decode(f(15)),
            "a better candidate (13) is already decoded"
        );
        // Frames come out in presentation order: 13 is the sample.
        assert_eq!(s.on_frame(f(13)), FrameRole::Sample { slots: 1 });
        assert_eq!(s.on_frame(f(14)), FrameRole::Skip);
        // Packets between samples are droppable; the one at the next sample time is not.
        assert!(!s.needs_full_decode(f(20)));
        assert!(s.needs_full_decode(f(25)));
        assert!(!s.needs_full_decode(f(26)));
    }

    #[test]
    fn remembered_packets_stay_bounded() {
        let mut s = SampleSchedule::new(0.001, 0.001, 1e9);
        s.on_frame(Some(0));
        // Ever earlier packets, all candidates for the same far sample.
        for p in (1_000_000..1_010_000).rev() {
            s.needs_full_decode(Some(p));
        }
        assert!(s.decodable.len() <= MAX_REMEMBERED_PACKETS);
    }
}
