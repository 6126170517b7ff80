//! The packet loop: reads packets of the chosen stream, tells the decoder which it may drop,
//! seeks over long gaps, and hands decoded frames to the schedule; samples leave converted.

use super::convert::FrameConverter;
use super::probe::{OpenedVideo, open_video};
use super::schedule::{FrameRole, SampleSchedule};
use super::{SampledFrame, SamplerOptions, VideoError, VideoInfo, init_ffmpeg};
use crate::domain::DecodeReport;
use ff::ffi;
use ffmpeg_next as ff;
use std::path::Path;
use std::time::Instant;

/// Unreadable packets in a row after which the demuxer is taken to have hit the end of the
/// readable data (a cut file) rather than a damaged packet.
const MAX_DEMUX_ERRORS_IN_A_ROW: u32 = 16;

/// Where the sampler is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading packets and decoding.
    Reading,
    /// End of input sent to the decoder: draining its last frames.
    Draining,
    Done,
}

/// A lazily sampled video: iterate to get [`SampledFrame`]s in time order.
pub struct VideoSampler {
    input_name: String,
    opts: SamplerOptions,
    input: ff::format::context::Input,
    stream_index: usize,
    decoder: ff::decoder::Video,
    info: VideoInfo,
    report: DecodeReport,
    schedule: SampleSchedule,
    /// Seconds per timestamp tick of the video stream.
    tick: f64,
    stage: Stage,
    /// The decoder may have frames to give (a packet or end-of-input was sent since it last
    /// said it needs input).
    decoder_has_output: bool,
    frame: ff::frame::Video,
    converter: FrameConverter,
    skipping: bool,
    produced: u32,
    consecutive_errors: u32,
    /// Presentation time of the last frame decoded, from the first frame, in seconds.
    last_frame_s: Option<f64>,
    /// Decode timestamp of the last packet read (where the demuxer is).
    last_read_ts: Option<i64>,
    seeks: u32,
    /// After a seek, frames shown before the keyframe (open-GOP leading frames) cannot decode
    /// cleanly; they are not samples and not damage either.
    seek_floor: Option<i64>,
    /// The sample time of the last forward seek (one per sample time).
    seeked_for: Option<i64>,
    /// Sample time, aim and attempt of a seek whose landing is not verified yet.
    seek_check: Option<(i64, i64, u32)>,
    reseeks: u32,
    video_packets: u64,
    droppable_packets: u64,
    demux_errors: u32,
    multi_slot_frames: u32,
    untimed_frames: u32,
    skip_enabled: bool,
}

impl VideoSampler {
    /// Open `path` (named `input_name` in errors and logs) and prepare the decoder. Refuses
    /// oversized streams before any frame is decoded.
    pub fn open(input_name: &str, path: &Path, opts: &SamplerOptions) -> Result<Self, VideoError> {
        opts.validate()?;
        init_ffmpeg();
        let OpenedVideo {
            input,
            stream_index,
            decoder,
            info,
            tick,
        } = open_video(input_name, path, opts)?;
        // Skipping pays only when most frames are not samples (e.g. 2 samples/s of 25 fps).
        let skip_enabled = opts.skip_nonref
            && info
                .frame_rate
                .is_some_and(|fps| fps >= 2.0 * opts.sample_rate);
        Ok(VideoSampler {
            input_name: input_name.to_string(),
            schedule: SampleSchedule::new(opts.sample_rate, tick, opts.max_duration_s),
            converter: FrameConverter::new(opts.max_output_side, info.rotation),
            opts: opts.clone(),
            input,
            stream_index,
            decoder,
            info,
            report: DecodeReport::default(),
            tick,
            stage: Stage::Reading,
            decoder_has_output: false,
            frame: ff::frame::Video::empty(),
            skipping: false,
            produced: 0,
            consecutive_errors: 0,
            last_frame_s: None,
            last_read_ts: None,
            seeks: 0,
            seek_floor: None,
            seeked_for: None,
            seek_check: None,
            reseeks: 0,
            video_packets: 0,
            droppable_packets: 0,
            demux_errors: 0,
            multi_slot_frames: 0,
            untimed_frames: 0,
            skip_enabled,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// What was skipped, cut or capped so far (complete once the iterator has ended).
    pub fn report(&self) -> &DecodeReport {
        &self.report
    }

    /// Seconds of the video that were looked at: up to the last decoded frame, within the cap.
    pub fn analysed_duration_s(&self) -> f64 {
        self.last_frame_s
            .unwrap_or(0.0)
            .min(self.opts.max_duration_s)
    }

    fn deadline_passed(&self) -> bool {
        self.opts.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn finish(&mut self) {
        if self.stage == Stage::Done {
            return;
        }
        self.stage = Stage::Done;
        if self.skip_enabled {
            self.report.notes.push(format!(
                "{} of {} video packets were marked droppable: non-reference frames that cannot \
                 be a sample were not decoded (skip_frame=nonref); sample times are exact",
                self.droppable_packets, self.video_packets
            ));
        }
        if self.seeks > 0 {
            self.report.notes.push(format!(
                "seeked {} times to the keyframe before a distant sample ({} went back one \
                 keyframe more)",
                self.seeks, self.reseeks
            ));
        }
        if self.multi_slot_frames > 0 {
            self.report.notes.push(format!(
                "{} frames stand for more than one sample time (no newer frame in between)",
                self.multi_slot_frames
            ));
        }
        if self.untimed_frames > 0 {
            self.report.notes.push(format!(
                "{} frames without a timestamp were ignored",
                self.untimed_frames
            ));
        }
    }

    fn count_failure(&mut self, what: String) -> Result<(), VideoError> {
        self.report.corrupt_packets += 1;
        self.consecutive_errors += 1;
        if self.consecutive_errors >= self.opts.max_consecutive_errors {
            return Err(VideoError::TooManyDecodeErrors {
                input: self.input_name.clone(),
                count: self.consecutive_errors,
                last: what,
            });
        }
        Ok(())
    }

    fn caps_reached(&self) -> bool {
        self.produced >= self.opts.max_frames || self.schedule.past_duration_cap()
    }

    /// The caps stopped sampling: `capped` only if the stream really goes on past them.
    fn probe_beyond_caps(&mut self) {
        let Some(next_ts) = self.schedule.next_sample_ts() else {
            return;
        };
        if self.stage == Stage::Reading {
            let mut packet = ff::Packet::empty();
            for _ in 0..10_000 {
                if self.deadline_passed() {
                    break;
                }
                match packet.read(&mut self.input) {
                    Ok(()) if packet.stream() == self.stream_index => {
                        if packet.pts().or(packet.dts()).is_some_and(|p| p >= next_ts) {
                            self.report.capped = true;
                            break;
                        }
                    }
                    Ok(()) => {}
                    Err(_) => break,
                }
            }
        } else if self.stage == Stage::Draining {
            // Input ended already; frames still inside the decoder may lie past the cap.
            while self.decoder.receive_frame(&mut self.frame).is_ok() {
                if self.frame.timestamp().is_some_and(|t| t >= next_ts) {
                    self.report.capped = true;
                    break;
                }
            }
        }
        if self.report.capped {
            let why = if self.produced >= self.opts.max_frames {
                format!("frame cap of {} samples", self.opts.max_frames)
            } else {
                format!("duration cap of {} s", self.opts.max_duration_s)
            };
            self.report.notes.push(format!("stopped at the {why}"));
        }
    }

    /// Index entry (keyframe) at or before `ts`, as its timestamp.
    fn keyframe_at_or_before(&mut self, ts: i64) -> Option<i64> {
        // SAFETY: the stream is live; the entry is read before any other call on the context.
        unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            let entry =
                ffi::avformat_index_get_entry_from_timestamp(st, ts, ffi::AVSEEK_FLAG_BACKWARD);
            (!entry.is_null()).then(|| (*entry).timestamp)
        }
    }

    /// Seek the demuxer to the last keyframe at or before `ts` (stream ticks) and restart
    /// decoding. Demuxers differ on whether they compare presentation or decode times here;
    /// [`Self::went_back_after_seek`] catches a landing past the sample time.
    fn seek_to_keyframe(&mut self, ts: i64) -> bool {
        // SAFETY: reading the time base of a live stream, then pure arithmetic.
        let micros = unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            let us = ffi::AVRational {
                num: 1,
                den: ffi::AV_TIME_BASE,
            };
            ffi::av_rescale_q(ts, (*st).time_base, us)
        };
        if let Err(e) = self.input.seek(micros, ..micros + 1) {
            tracing::debug!(input = %self.input_name, error = %e, "seek failed; decoding on");
            return false;
        }
        self.decoder.flush();
        self.schedule.forget_packets();
        self.decoder_has_output = false;
        self.last_read_ts = None;
        self.seek_floor = self.keyframe_at_or_before(ts);
        true
    }

    /// Seek forward when the keyframe before the next sample is far past what was read. Each
    /// sample time gets at most one forward seek; [`Self::went_back_after_seek`] verifies it landed early
    /// enough.
    fn maybe_seek(&mut self) {
        let (Some(min_gap), Some(target), Some(read)) = (
            self.opts.seek_min_gap_s,
            self.schedule.next_sample_ts(),
            self.last_read_ts,
        ) else {
            return;
        };
        if self.seeked_for.is_some_and(|t| t >= target)
            || ((target - read) as f64) * self.tick < min_gap
        {
            return;
        }
        let Some(keyframe_ts) = self.keyframe_at_or_before(target) else {
            return;
        };
        if ((keyframe_ts - read) as f64) * self.tick < min_gap {
            return;
        }
        self.seeked_for = Some(target);
        tracing::debug!(input = %self.input_name, read, target, keyframe_ts, "seeking forward");
        if self.seek_to_keyframe(target) {
            self.seeks += 1;
            self.seek_check = Some((target, keyframe_ts, 0));
        }
    }

    /// After a forward seek, the first clean frame must be at or before the sample time: the
    /// demuxer may land on a keyframe shown after it (index times can be decode times), and
    /// frames of the previous group shown in between would be missed. Then go back one keyframe
    /// (up to three times, then to the start) and decode from there.
    fn went_back_after_seek(&mut self, ts: i64) -> bool {
        let Some((target, aim, tries)) = self.seek_check.take() else {
            return false;
        };
        if ts <= target {
            return false;
        }
        self.reseeks += 1;
        let back = self.keyframe_at_or_before(aim - 1).filter(|_| tries < 3);
        match back {
            Some(back) if self.seek_to_keyframe(back) => {
                self.seek_check = Some((target, back, tries + 1));
            }
            _ => {
                let start = self.schedule.origin_ts().unwrap_or(i64::MIN / 2);
                if !self.seek_to_keyframe(start) {
                    self.report.notes.push(format!(
                        "could not seek back for the sample at {:.2} s; it may be late",
                        self.schedule.seconds(target)
                    ));
                }
            }
        }
        true
    }

    fn set_skip(&mut self, skip: bool) {
        if skip != self.skipping {
            let mode = if skip {
                ff::Discard::NonReference
            } else {
                ff::Discard::Default
            };
            // SAFETY: the decoder reads skip_frame per packet (frame threads copy it on submit).
            unsafe { (*self.decoder.as_mut_ptr()).skip_frame = mode.into() };
            self.skipping = skip;
        }
    }

    /// Read and send the next packet of the video stream; at the end, start draining.
    fn feed(&mut self) -> Result<(), VideoError> {
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {
                    self.demux_errors = 0;
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    self.last_read_ts = packet.dts().or(packet.pts()).or(self.last_read_ts);
                    let full = !self.skip_enabled || self.schedule.needs_full_decode(packet.pts());
                    self.set_skip(!full);
                    self.video_packets += 1;
                    self.droppable_packets += u64::from(!full);
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(e) => self.count_failure(format!("packet rejected: {e}"))?,
                    }
                    self.decoder_has_output = true;
                    return Ok(());
                }
                Err(ff::Error::Eof) => {}
                // One damaged packet: demuxers resync past it. A run of them is a cut file
                // whose index promises packets the bytes no longer hold.
                Err(ff::Error::InvalidData) if self.demux_errors < MAX_DEMUX_ERRORS_IN_A_ROW => {
                    self.demux_errors += 1;
                    self.report.corrupt_packets += 1;
                    continue;
                }
                Err(e) => {
                    self.report.truncated = true;
                    self.report.notes.push(format!(
                        "demuxer stopped after {:.2} s of video: {e}",
                        self.last_frame_s.unwrap_or(0.0)
                    ));
                }
            }
            self.set_skip(false);
            // Sending end-of-input twice is harmless but not useful; errors here mean the
            // decoder is already drained.
            if let Err(e) = self.decoder.send_eof() {
                tracing::debug!(input = %self.input_name, error = %e, "decoder refused end of input");
            }
            self.stage = Stage::Draining;
            self.decoder_has_output = true;
            return Ok(());
        }
    }

    /// Handle one decoded frame; a sample when it is one.
    fn on_frame(&mut self) -> Result<Option<SampledFrame>, VideoError> {
        let ts = self.frame.timestamp().or(self.frame.pts());
        if self.frame.is_corrupt() || self.frame.has_decode_errors() {
            let leading = matches!((ts, self.seek_floor), (Some(t), Some(floor)) if t < floor);
            if !leading {
                self.count_failure("frame decoded with errors".to_string())?;
            }
            return Ok(None);
        }
        self.consecutive_errors = 0;
        if let Some(ts) = ts
            && self.went_back_after_seek(ts)
        {
            // This frame comes from the abandoned position.
            return Ok(None);
        }
        if ts.is_none() {
            self.untimed_frames += 1;
        }
        let role = self.schedule.on_frame(ts);
        if let Some(ts) = ts {
            self.last_frame_s = Some(self.schedule.seconds(ts));
        }
        let FrameRole::Sample { slots } = role else {
            return Ok(None);
        };
        let (w, h) = (self.frame.width(), self.frame.height());
        if w > self.opts.max_input_side || h > self.opts.max_input_side {
            return Err(VideoError::TooLarge {
                input: self.input_name.clone(),
                width: w,
                height: h,
                max: self.opts.max_input_side,
            });
        }
        if slots > 1 {
            self.multi_slot_frames += 1;
        }
        let image = self.converter.convert(&self.frame, &self.input_name)?;
        self.produced += 1;
        tracing::debug!(input = %self.input_name, t = self.last_frame_s, slots, "sample");
        Ok(Some(SampledFrame {
            t: self.last_frame_s.unwrap_or(0.0),
            slots,
            image,
        }))
    }

    fn advance(&mut self) -> Result<Option<SampledFrame>, VideoError> {
        loop {
            if self.stage == Stage::Done {
                return Ok(None);
            }
            if self.deadline_passed() {
                self.report.deadline_hit = true;
                self.report.notes.push(format!(
                    "deadline reached after {:.2} s of video",
                    self.last_frame_s.unwrap_or(0.0)
                ));
                self.finish();
                return Ok(None);
            }
            if self.caps_reached() {
                self.probe_beyond_caps();
                self.finish();
                return Ok(None);
            }
            if self.decoder_has_output {
                match self.decoder.receive_frame(&mut self.frame) {
                    Ok(()) => {
                        if let Some(sample) = self.on_frame()? {
                            return Ok(Some(sample));
                        }
                        continue;
                    }
                    Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                        self.decoder_has_output = false;
                    }
                    Err(ff::Error::Eof) => {
                        self.check_truncation();
                        self.finish();
                        return Ok(None);
                    }
                    Err(e) => {
                        self.count_failure(format!("decoding failed: {e}"))?;
                        continue;
                    }
                }
            }
            match self.stage {
                Stage::Reading => {
                    self.maybe_seek();
                    self.feed()?;
                }
                // Draining and the decoder wants input: it has nothing more to give.
                Stage::Draining => {
                    self.check_truncation();
                    self.finish();
                    return Ok(None);
                }
                Stage::Done => return Ok(None),
            }
        }
    }

    /// The stream ended well before the duration its header declares.
    fn check_truncation(&mut self) {
        if self.report.truncated {
            return;
        }
        let (Some(declared), Some(last)) = (self.info.duration_s, self.last_frame_s) else {
            return;
        };
        let frame = self.info.frame_rate.map_or(0.1, |f| 1.0 / f);
        if last + 2.0 * frame + 1.0 < declared {
            self.report.truncated = true;
            self.report.notes.push(format!(
                "video ends at {last:.2} s but declares {declared:.2} s"
            ));
        }
    }
}

impl Iterator for VideoSampler {
    type Item = Result<SampledFrame, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => None,
            Err(e) => {
                self.report.notes.push(e.to_string());
                self.finish();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampler_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<VideoSampler>();
        assert_send::<VideoError>();
    }
}
