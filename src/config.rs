//! The one table of settings and limits. Settings shape results (recorded in every result's
//! provenance); limits protect the process (not recorded: they change whether a result exists,
//! not what it says).
//!
//! Each entry is declared once below, with its type, default, flag, `REGARD_*` variable and
//! description, and for settings whether a job may override it and within which bounds. From
//! that one declaration come the struct field and its default, the provenance key, the flag and
//! its `--help`, the job's override with its bounds check, and the README's configuration table
//! ([`markdown_table`]; `tests/settings.rs` holds the README and the job schema to it).

use clap::{Arg, ArgMatches};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// A value a flag or variable can carry: how clap parses it, and how a default is shown.
pub trait FlagValue: Clone + Send + Sync + 'static {
    /// The type as the README names it.
    const KIND: &'static str;
    fn parser(arg: Arg) -> Arg;
    fn get(matches: &ArgMatches, id: &str) -> Option<Self>;
    /// As a flag would be written, e.g. `0.6`, `true`, `18,30,45,60`.
    fn show(&self) -> String;
}

macro_rules! scalar_flag_values {
    ($($t:ty => $kind:literal),* $(,)?) => {$(
        impl FlagValue for $t {
            const KIND: &'static str = $kind;
            fn parser(arg: Arg) -> Arg {
                arg.value_parser(clap::value_parser!($t))
            }
            fn get(matches: &ArgMatches, id: &str) -> Option<Self> {
                matches.get_one::<$t>(id).copied()
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

scalar_flag_values!(f32 => "number", f64 => "number", u32 => "integer", u64 => "integer", usize => "integer");

impl FlagValue for bool {
    const KIND: &'static str = "boolean";
    fn parser(arg: Arg) -> Arg {
        arg.value_parser(clap::builder::BoolishValueParser::new())
    }
    fn get(matches: &ArgMatches, id: &str) -> Option<Self> {
        matches.get_one::<bool>(id).copied()
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl FlagValue for Vec<u32> {
    const KIND: &'static str = "integers";
    fn parser(arg: Arg) -> Arg {
        arg.value_parser(clap::value_parser!(u32))
            .value_delimiter(',')
    }
    fn get(matches: &ArgMatches, id: &str) -> Option<Self> {
        matches
            .get_many::<u32>(id)
            .map(|values| values.copied().collect())
    }
    fn show(&self) -> String {
        let parts: Vec<String> = self.iter().map(u32::to_string).collect();
        parts.join(",")
    }
}

/// How a flag's value maps to the field it sets, when the flag counts in friendlier units
/// (MiB for bytes, seconds for durations).
pub trait Unit<F> {
    type Flag: FlagValue;
    fn to_field(flag: Self::Flag) -> F;
    fn to_flag(field: &F) -> Self::Flag;
}

/// The flag carries the field's own value.
pub struct Same;
/// Bytes, given in MiB.
pub struct Mib;
/// A duration, given in whole seconds.
pub struct Seconds;

impl<T: FlagValue> Unit<T> for Same {
    type Flag = T;
    fn to_field(flag: T) -> T {
        flag
    }
    fn to_flag(field: &T) -> T {
        field.clone()
    }
}

impl Unit<u64> for Mib {
    type Flag = u64;
    fn to_field(flag: u64) -> u64 {
        flag.saturating_mul(MIB)
    }
    fn to_flag(field: &u64) -> u64 {
        field / MIB
    }
}

impl Unit<Duration> for Seconds {
    type Flag = u64;
    fn to_field(flag: u64) -> Duration {
        Duration::from_secs(flag)
    }
    fn to_flag(field: &Duration) -> u64 {
        field.as_secs()
    }
}

/// One row of the table, as `--help` and the README show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The field: the provenance key and, when a job may override it, the job's `settings` key.
    pub name: &'static str,
    /// `number`, `integer`, `boolean`, `integers` (comma-separated).
    pub kind: &'static str,
    /// As the flag would take it.
    pub default: String,
    /// Without the leading `--`; `None`: not settable from the command line.
    pub flag: Option<&'static str>,
    pub env: Option<&'static str>,
    /// Inclusive bounds of a job's override; `None`: a job may not change it.
    pub job: Option<(f64, f64)>,
    /// The variable `regard enqueue` reads the override from, when a job may set it.
    pub job_env: Option<&'static str>,
    pub description: String,
}

fn help(description: &str, default: &str) -> String {
    format!("{description} [default: {default}]")
}

/// The flag of one entry, parsed as its unit's type; `--help` shows the table's default.
fn flag_arg<V: FlagValue>(
    id: &'static str,
    flag: &'static str,
    env: &'static str,
    e: &Entry,
) -> Arg {
    V::parser(
        Arg::new(id)
            .long(flag)
            .env(env)
            .help(help(&e.description, &e.default)),
    )
}

/// `doc` attributes of an entry joined into one sentence.
fn description(lines: &[&str]) -> String {
    let words: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    words.join(" ")
}

/// Emits its body once per overridable setting (the bounds only drive the repetition).
macro_rules! job_only {
    ($lo:literal $hi:literal => $($body:tt)*) => {
        $($body)*
    };
}

/// Emits its body for a setting with a flag.
macro_rules! flag_only {
    ($flag:literal => $($body:tt)*) => {
        $($body)*
    };
}

macro_rules! optional {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}

/// Settings: `field: type = default, flag "..." env "..."` and optionally `, job lo..=hi`.
macro_rules! settings_table {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $default:expr
        $(, flag $flag:literal env $env:literal)?
        $(, job $lo:literal ..= $hi:literal)?;
    )*) => {
        /// Everything that changes what an analysis says. Two analyses of the same bytes with
        /// the same model set and equal `AnalysisSettings` are the same result.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct AnalysisSettings {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl Default for AnalysisSettings {
            fn default() -> Self {
                AnalysisSettings { $( $field: $default, )* }
            }
        }

        /// The settings table, in declaration order.
        pub fn settings() -> Vec<Entry> {
            let d = AnalysisSettings::default();
            vec![$({
                let job = optional!($(($lo as f64, $hi as f64))?);
                let job_env: Option<&'static str> = optional!($(concat!("REGARD_JOB_", $env))?);
                Entry {
                    name: stringify!($field),
                    kind: <$ty as FlagValue>::KIND,
                    default: d.$field.show(),
                    flag: optional!($($flag)?),
                    env: optional!($(concat!("REGARD_", $env))?),
                    job,
                    job_env: job.and(job_env),
                    description: description(&[$($doc),+]),
                }
            },)*]
        }

        /// The settings a job may override (the job's `settings` object), each within its
        /// bounds. Anything not listed is refused: a job must not be able to change what is
        /// recorded as "the method" beyond these knobs. Values stay `f64` as on the wire, so a
        /// value at a bound is inside it.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct SettingsOverrides {
            $($(
                #[doc = concat!("Within ", stringify!($lo), "..=", stringify!($hi), ".")]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<f64>,
            )?)*
        }

        impl SettingsOverrides {
            /// The first value outside its bounds, as a sentence naming the setting.
            pub fn check(&self) -> Result<(), String> {
                $($(
                    if let Some(v) = self.$field {
                        let (lo, hi) = ($lo as f64, $hi as f64);
                        if !(v >= lo && v <= hi) {
                            return Err(format!(
                                "{} = {v} is outside {lo}..={hi}",
                                stringify!($field)
                            ));
                        }
                    }
                )?)*
                Ok(())
            }

            pub fn is_empty(&self) -> bool {
                *self == SettingsOverrides::default()
            }

            /// The worker's settings with this job's overrides applied.
            pub fn apply(&self, mut s: AnalysisSettings) -> AnalysisSettings {
                $($(
                    job_only!($lo $hi => if let Some(v) = self.$field {
                        s.$field = v as $ty;
                    });
                )?)*
                s
            }
        }

        /// The settings' flags and `REGARD_*` variables; a flag not given leaves the setting
        /// as it was. Boxed, so that the commands' argument structs stay small.
        #[derive(Debug, Clone, Default)]
        pub struct SettingsArgs {
            pub flags: Box<SettingsFlags>,
        }

        /// The value of each setting's flag, if given.
        #[derive(Debug, Clone, Default)]
        pub struct SettingsFlags {
            $( $(#[doc = $doc])+ pub $field: Option<$ty>, )*
        }

        impl SettingsArgs {
            pub fn apply(&self, mut s: AnalysisSettings) -> AnalysisSettings {
                $(
                    if let Some(v) = &self.flags.$field {
                        s.$field = v.clone();
                    }
                )*
                s
            }
        }

        impl clap::FromArgMatches for SettingsArgs {
            fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
                Ok(SettingsArgs { flags: Box::new(SettingsFlags {
                    $(
                        // Only a setting with a flag has an argument to read.
                        $field: None $( .or(flag_only!($flag => <$ty as FlagValue>::get(m, stringify!($field)))) )?,
                    )*
                })})
            }
            fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
                let new = Self::from_arg_matches(m)?;
                $(
                    if new.flags.$field.is_some() {
                        self.flags.$field = new.flags.$field;
                    }
                )*
                Ok(())
            }
        }

        /// `regard enqueue`'s flags for one job's overrides: the settings' own flags, read from
        /// `REGARD_JOB_*` variables (the worker's `REGARD_*` ones are its own settings).
        #[derive(Debug, Clone, Default)]
        pub struct JobSettingsArgs {
            pub overrides: SettingsOverrides,
        }

        impl clap::FromArgMatches for JobSettingsArgs {
            fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
                let mut o = SettingsOverrides::default();
                $($(
                    job_only!($lo $hi => o.$field = m.get_one::<f64>(stringify!($field)).copied());
                )?)*
                Ok(JobSettingsArgs { overrides: o })
            }
            fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
                let new = Self::from_arg_matches(m)?.overrides;
                $($(
                    job_only!($lo $hi => if new.$field.is_some() {
                        self.overrides.$field = new.$field;
                    });
                )?)*
                Ok(())
            }
        }

        impl clap::Args for JobSettingsArgs {
            fn augment_args(mut cmd: clap::Command) -> clap::Command {
                for e in settings() {
                    let (Some((lo, hi)), Some(flag), Some(env)) = (e.job, e.flag, e.job_env)
                    else {
                        continue;
                    };
                    cmd = cmd.arg(
                        Arg::new(e.name)
                            .long(flag)
                            .env(env)
                            .value_parser(clap::value_parser!(f64))
                            .help(format!("{} For this job ({lo} to {hi}).", e.description)),
                    );
                }
                cmd
            }
            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_args(cmd)
            }
        }

        impl clap::Args for SettingsArgs {
            fn augment_args(mut cmd: clap::Command) -> clap::Command {
                let entries = settings();
                let entry = |name| entries.iter().find(|e| e.name == name).expect("in the table");
                $($(
                    cmd = cmd.arg(flag_arg::<$ty>(
                        stringify!($field),
                        $flag,
                        concat!("REGARD_", $env),
                        entry(stringify!($field)),
                    ));
                )?)*
                cmd
            }
            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_args(cmd)
            }
        }
    };
}

/// Limits: `field: type = default, flag "..." in Unit env "..."`.
macro_rules! limits_table {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $default:expr, flag $flag:literal in $unit:ident env $env:literal;
    )*) => {
        /// Bounds that keep a worker alive whatever it is fed.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Limits {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $( $field: $default, )* }
            }
        }

        /// The limits table, in declaration order (never a job override).
        pub fn limits() -> Vec<Entry> {
            let d = Limits::default();
            vec![$(
                Entry {
                    name: stringify!($field),
                    kind: <<$unit as Unit<$ty>>::Flag as FlagValue>::KIND,
                    default: <$unit as Unit<$ty>>::to_flag(&d.$field).show(),
                    flag: Some($flag),
                    env: Some(concat!("REGARD_", $env)),
                    job: None,
                    job_env: None,
                    description: description(&[$($doc),+]),
                },
            )*]
        }

        /// The limits' flags and `REGARD_*` variables. Boxed, so that the commands' argument
        /// structs stay small.
        #[derive(Debug, Clone, Default)]
        pub struct LimitArgs {
            pub flags: Box<LimitFlags>,
        }

        /// The value of each limit's flag, if given, in the flag's unit.
        #[derive(Debug, Clone, Default)]
        pub struct LimitFlags {
            $( $(#[doc = $doc])+ pub $field: Option<<$unit as Unit<$ty>>::Flag>, )*
        }

        impl LimitArgs {
            /// The defaults with the given flags applied.
            pub fn limits(&self) -> Limits {
                let mut l = Limits::default();
                $(
                    if let Some(v) = &self.flags.$field {
                        l.$field = <$unit as Unit<$ty>>::to_field(v.clone());
                    }
                )*
                l
            }
        }

        impl clap::FromArgMatches for LimitArgs {
            fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
                Ok(LimitArgs { flags: Box::new(LimitFlags {
                    $( $field: <<$unit as Unit<$ty>>::Flag as FlagValue>::get(m, stringify!($field)), )*
                })})
            }
            fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
                let new = Self::from_arg_matches(m)?;
                $(
                    if new.flags.$field.is_some() {
                        self.flags.$field = new.flags.$field;
                    }
                )*
                Ok(())
            }
        }

        impl clap::Args for LimitArgs {
            fn augment_args(mut cmd: clap::Command) -> clap::Command {
                let entries = limits();
                let entry = |name| entries.iter().find(|e| e.name == name).expect("in the table");
                $(
                    cmd = cmd.arg(flag_arg::<<$unit as Unit<$ty>>::Flag>(
                        stringify!($field),
                        $flag,
                        concat!("REGARD_", $env),
                        entry(stringify!($field)),
                    ));
                )*
                cmd
            }
            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_args(cmd)
            }
        }
    };
}

settings_table! {
    /// Detector score below which a candidate face is dropped.
    detection_score_threshold: f32 = 0.7,
        flag "detection-threshold" env "DETECTION_THRESHOLD", job 0.3..=0.95;
    /// IoU above which two detections are the same face (non-maximum suppression).
    nms_iou: f32 = 0.3, flag "nms-iou" env "NMS_IOU";
    /// Faces shorter than this (pixels) are not reported at all.
    min_face_px: f32 = 16.0, flag "min-face-px" env "MIN_FACE_PX";
    /// In trailers, faces shorter than this (pixels) are not looked for: one detector run per
    /// 1080p frame instead of three (a poster's small faces matter more than a crowd's in a shot).
    trailer_min_face_px: f32 = 48.0, flag "trailer-min-face-px" env "TRAILER_MIN_FACE_PX";
    /// In trailers, cut the detector's window to the frame (rounded up to the largest stride)
    /// when the detector's graph takes any input size: a 16:9 frame is one 640×384 run instead
    /// of a 640×640 one with 256 rows of padding (40% less detector work; every figure of
    /// `regard evaluate` unchanged). Posters and photos keep 640×640 windows: cut to their views
    /// they changed the robustness figures of the evaluation.
    trailer_fitted_windows: bool = true,
        flag "trailer-fitted-windows" env "TRAILER_FITTED_WINDOWS";
    /// Below this face height (pixels) perceived attributes are `unknown` (face_too_small);
    /// calibrated by `regard evaluate` (EVALUATION.md).
    // The size rule, run on the combined probabilities, chose 16 px; the composed posters then
    // had 3 of 51 faces of 16 px and more wrong (tests/posters.rs), so 24 px stays until the rule
    // is redone on a larger set (EVALUATION.md says when the value in use is not the rule's).
    min_reliable_face_px: f32 = 24.0,
        flag "min-reliable-face-px" env "MIN_RELIABLE_FACE_PX", job 16.0..=200.0;
    /// Below this top probability a categorical attribute is `unknown` (low_confidence);
    /// calibrated by `regard evaluate` (EVALUATION.md).
    min_attribute_confidence: f32 = 0.85,
        flag "min-confidence" env "MIN_CONFIDENCE", job 0.5..=0.99;
    /// When several models perceive one attribute (gender: dlib's and face-api's), their
    /// probabilities of one label further apart than this make it `unknown` (models_disagree);
    /// the label is decided on their mean otherwise. Chosen by the rule in
    /// fixtures/evaluation-method.md.
    max_model_disagreement: f32 = 1.0,
        flag "max-model-disagreement" env "MAX_MODEL_DISAGREEMENT";
    /// A face whose second-opinion age (face-api) is below this many years is given that age;
    /// older faces the age model's. Not measured here (the labelled set has no age truth): see
    /// fixtures/evaluation-method.md.
    second_opinion_age_below: f32 = 25.0,
        flag "second-opinion-age-below" env "SECOND_OPINION_AGE_BELOW";
    /// Average each face's perceived attributes with those of its mirror image.
    mirror_average: bool = true, flag "mirror-average" env "MIRROR_AVERAGE";
    /// Upper edges (exclusive) of the age bands, in years: 18,30,45,60 gives 0-17, 18-29, 30-44,
    /// 45-59, 60+. No flag: stored rows and figures are grouped by these band labels.
    age_band_edges: Vec<u32> = vec![18, 30, 45, 60];
    /// Trailer frames sampled per second of presentation time.
    sample_rate: f64 = 2.0, flag "sample-rate" env "SAMPLE_RATE", job 0.5..=5.0;
    /// Trailer tracks seen in fewer sampled frames than this are dropped as untrustworthy.
    /// Chosen by the rule in fixtures/evaluation-method.md (equal recall, fewest false persons,
    /// at most one second of samples).
    min_track_frames: u32 = 2, flag "min-track-frames" env "MIN_TRACK_FRAMES";
    /// In trailers, the gender and age models look at the first this many faces of each shot
    /// track (at least 1), then at every `trailer_perceive_every`-th: a person's attributes are
    /// fused over its faces, and the faces of one track in one shot say much the same.
    trailer_perceive_first: u32 = 2, flag "trailer-perceive-first" env "TRAILER_PERCEIVE_FIRST";
    /// In trailers, after a track's first `trailer_perceive_first` faces, the gender and age
    /// models look at every this-many-th face of it (1: every face).
    trailer_perceive_every: u32 = 3, flag "trailer-perceive-every" env "TRAILER_PERCEIVE_EVERY";
    /// Cosine similarity of face embeddings above which two shot tracks are the same person.
    same_person_similarity: f32 = 0.363,
        flag "same-person-similarity" env "SAME_PERSON_SIMILARITY";
    /// Re-identification across shots uses only faces this frontal: the nose's offset from the
    /// middle of the eyes along the eye line, in inter-ocular distances, doubled (0 frontal, 1
    /// nose under an eye; a yaw proxy from the five landmarks, `track::evidence`).
    reid_max_yaw: f32 = 0.45, flag "reid-max-yaw" env "REID_MAX_YAW";
    /// Re-identification across shots uses only faces whose eye line is tilted at most this
    /// many degrees (roll).
    reid_max_roll_deg: f32 = 25.0, flag "reid-max-roll-deg" env "REID_MAX_ROLL_DEG";
    /// Re-identification across shots uses only faces this sharp: variance of the Laplacian of
    /// the grey embedding chip (112×112, 0..255), computed in memory (`vision::quality`).
    reid_min_sharpness: f32 = 100.0, flag "reid-min-sharpness" env "REID_MIN_SHARPNESS";
    /// A shot track is merged with tracks of other shots only with at least this many embedded
    /// faces that pass the pose and sharpness gates; otherwise it stays its own person.
    min_reid_samples: u32 = 2, flag "min-reid-samples" env "MIN_REID_SAMPLES";
    /// Signature distance (colour and layout, 0..1) between consecutive sampled frames at or
    /// above which a shot cut is declared; tracks never continue across a cut (`track::shot`).
    shot_cut_distance: f32 = 0.22, flag "shot-cut-distance" env "SHOT_CUT_DISTANCE";
}

limits_table! {
    /// Largest media file accepted (download or local), in MiB.
    max_media_bytes: u64 = 512 * MIB, flag "max-media-mib" in Mib env "MAX_MEDIA_MIB";
    /// Largest image file accepted, in MiB: a poster is held in memory whole while decoded.
    max_image_bytes: u64 = 64 * MIB, flag "max-image-mib" in Mib env "MAX_IMAGE_MIB";
    /// Largest image accepted, per side, in pixels.
    max_image_side: u32 = 12_000, flag "max-image-side" in Same env "MAX_IMAGE_SIDE";
    /// Largest image accepted, in pixels (width × height).
    max_image_pixels: u64 = 60_000_000,
        flag "max-image-pixels" in Same env "MAX_IMAGE_PIXELS";
    /// Largest pixel memory for decoding one image, in MiB: the decoded buffer plus the copies
    /// made to rotate it and convert it to RGB, reserved before decoding (with the image file
    /// itself, at most `max_image_bytes` + this per poster slot, plus the decoders' working
    /// buffers).
    max_image_alloc: u64 = 384 * MIB,
        flag "max-image-alloc-mib" in Mib env "MAX_IMAGE_ALLOC_MIB";
    /// Largest video frame accepted, per side, in pixels (16K headers are refused).
    max_video_side: u32 = 4096, flag "max-video-side" in Same env "MAX_VIDEO_SIDE";
    /// Longest stretch of a trailer analysed, in seconds.
    max_video_duration_s: f64 = 600.0,
        flag "max-video-seconds" in Same env "MAX_VIDEO_SECONDS";
    /// Most frames sampled from one trailer.
    max_video_frames: u32 = 2_400, flag "max-video-frames" in Same env "MAX_VIDEO_FRAMES";
    /// Wall-clock deadline for one media file's analysis, in seconds.
    analysis_deadline: Duration = Duration::from_secs(900),
        flag "deadline-seconds" in Seconds env "DEADLINE_SECONDS";
    /// Longest one job may run end to end (fetch, analysis, commit), in seconds: past it the
    /// run stops at the next frame and fails with `job_timeout` (retryable), freeing its slot.
    /// 0: no limit.
    job_timeout: Duration = Duration::from_secs(1800),
        flag "job-timeout" in Seconds env "JOB_TIMEOUT";
    /// HTTP connect timeout, in seconds.
    connect_timeout: Duration = Duration::from_secs(10),
        flag "connect-timeout-seconds" in Seconds env "CONNECT_TIMEOUT_SECONDS";
    /// Whole-transfer timeout of a download or a local file read, in seconds.
    fetch_timeout: Duration = Duration::from_secs(300),
        flag "fetch-timeout-seconds" in Seconds env "FETCH_TIMEOUT_SECONDS";
    /// Redirects followed at most.
    max_redirects: usize = 5, flag "max-redirects" in Same env "MAX_REDIRECTS";
}

impl AnalysisSettings {
    /// Flat key/values for provenance records.
    pub fn as_provenance(&self) -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The age band label for an age in years, e.g. "30-44" or "60+".
    pub fn age_band(&self, years: f32) -> String {
        let mut lower = 0;
        for &edge in &self.age_band_edges {
            if years < edge as f32 {
                return format!("{lower}-{}", edge - 1);
            }
            lower = edge;
        }
        format!("{lower}+")
    }

    /// Every band label, youngest first.
    pub fn age_bands(&self) -> Vec<String> {
        let mut bands = Vec::new();
        let mut lower = 0;
        for &edge in &self.age_band_edges {
            bands.push(format!("{lower}-{}", edge - 1));
            lower = edge;
        }
        bands.push(format!("{lower}+"));
        bands
    }
}

/// Markers around the generated block in README.md.
pub const README_BEGIN: &str = "<!-- settings table: generated from src/config.rs; REGARD_BLESS=1 cargo test --test settings rewrites it -->";
pub const README_END: &str = "<!-- end of settings table -->";

fn cell_code(v: Option<&str>, prefix: &str) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("`{prefix}{v}`"))
}

/// Markdown has no escape for `|` inside code spans but `\|` works in table cells everywhere.
fn cell_text(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The README's settings and limits tables, between [`README_BEGIN`] and [`README_END`].
pub fn markdown_table() -> String {
    let mut out = format!("{README_BEGIN}\n");
    out.push_str(
        "Settings (`regard analyze`, `worker`, `evaluate`) shape results: every one is recorded \
         in each result's provenance under its name. A job may override those with bounds \
         (its `settings` object, same names).\n\n",
    );
    out.push_str("| setting | flag | variable | type | default | job may set | meaning |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for e in settings() {
        let job = e
            .job
            .map_or_else(|| "no".to_string(), |(lo, hi)| format!("{lo} to {hi}"));
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            e.name,
            cell_code(e.flag, "--"),
            cell_code(e.env, ""),
            e.kind,
            e.default,
            job,
            cell_text(&e.description)
        ));
    }
    out.push_str(
        "\nLimits (`regard analyze`, `worker`) only decide whether a result exists and are not \
         recorded.\n\n",
    );
    let d = Limits::default();
    out.push_str(&format!(
        "Memory of one poster slot: the image file is held whole (at most `max_image_bytes`) \
         and its decoded pixels with their rotated or RGB copies are counted against \
         `max_image_alloc` before anything is allocated, so images take at most {} MiB per \
         slot by default, besides the models and the decoders' working buffers. A local \
         trailer is copied once into `$TMPDIR` while it is hashed (at most `max_media_bytes` \
         of disk per slot), so that what is analysed is what was hashed. Only regular files \
         are read (no FIFO, device or socket), within `fetch_timeout`.\n\n",
        (d.max_image_bytes + d.max_image_alloc) / MIB
    ));
    out.push_str("| limit | flag | variable | default | meaning |\n");
    out.push_str("|---|---|---|---|---|\n");
    for e in limits() {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.name,
            cell_code(e.flag, "--"),
            cell_code(e.env, ""),
            e.default,
            cell_text(&e.description)
        ));
    }
    out.push_str(README_END);
    out
}

/// The `settings` property of the job's JSON Schema (`schemas/job.v1.schema.json`): the
/// overridable settings with their bounds and descriptions.
pub fn job_settings_schema() -> serde_json::Value {
    // Whole bounds are written as integers, as a person writes them in JSON.
    let number = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            serde_json::json!(v as i64)
        } else {
            serde_json::json!(v)
        }
    };
    let properties: serde_json::Map<String, serde_json::Value> = settings()
        .into_iter()
        .filter_map(|e| {
            let (lo, hi) = e.job?;
            Some((
                e.name.to_string(),
                serde_json::json!({
                    "description": e.description,
                    "type": "number",
                    "minimum": number(lo),
                    "maximum": number(hi),
                }),
            ))
        })
        .collect();
    serde_json::json!({
        "description": "Per-job analysis settings; only these, only within these bounds.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    #[test]
    fn age_bands_cover_every_age_once() {
        let s = AnalysisSettings::default();
        assert_eq!(s.age_bands(), ["0-17", "18-29", "30-44", "45-59", "60+"]);
        assert_eq!(s.age_band(0.25), "0-17");
        assert_eq!(s.age_band(17.99), "0-17");
        assert_eq!(s.age_band(18.0), "18-29");
        assert_eq!(s.age_band(44.5), "30-44");
        assert_eq!(s.age_band(80.0), "60+");
    }

    #[test]
    fn provenance_lists_every_setting_of_the_table() {
        let p = AnalysisSettings::default().as_provenance();
        assert_eq!(p["min_reliable_face_px"], serde_json::json!(24.0));
        let names: Vec<&str> = settings().iter().map(|e| e.name).collect();
        let keys: Vec<&str> = p.keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn default_provenance_is_what_results_were_always_keyed_on() {
        // Result keys hash these keys and values (f32 settings widened to f64): a change here
        // re-keys every stored result.
        let p = serde_json::to_string(&AnalysisSettings::default().as_provenance()).unwrap();
        assert_eq!(
            p,
            r#"{"age_band_edges":[18,30,45,60],"detection_score_threshold":0.699999988079071,"max_model_disagreement":1.0,"min_attribute_confidence":0.8500000238418579,"min_face_px":16.0,"min_reid_samples":2,"min_reliable_face_px":24.0,"min_track_frames":2,"mirror_average":true,"nms_iou":0.30000001192092896,"reid_max_roll_deg":25.0,"reid_max_yaw":0.44999998807907104,"reid_min_sharpness":100.0,"same_person_similarity":0.3630000054836273,"sample_rate":2.0,"second_opinion_age_below":25.0,"shot_cut_distance":0.2199999988079071,"trailer_fitted_windows":true,"trailer_min_face_px":48.0,"trailer_perceive_every":3,"trailer_perceive_first":2}"#
        );
    }

    fn parse<A: Args + FromArgMatches>(args: &[&str]) -> Result<A, clap::Error> {
        let cmd = A::augment_args(clap::Command::new("t").no_binary_name(true));
        A::from_arg_matches(&cmd.try_get_matches_from(args)?)
    }

    #[test]
    fn flags_set_typed_fields_and_absent_flags_keep_the_defaults() {
        let a: SettingsArgs = parse(&[
            "--detection-threshold",
            "0.5",
            "--mirror-average",
            "false",
            "--min-track-frames",
            "3",
            "--sample-rate",
            "1.5",
        ])
        .unwrap();
        let s = a.apply(AnalysisSettings::default());
        let d = AnalysisSettings::default();
        assert_eq!(s.detection_score_threshold, 0.5);
        assert!(!s.mirror_average);
        assert_eq!(s.min_track_frames, 3);
        assert_eq!(s.sample_rate, 1.5);
        assert_eq!(s.nms_iou, d.nms_iou);
        assert_eq!(s.age_band_edges, d.age_band_edges);
        assert!(parse::<SettingsArgs>(&["--min-track-frames", "2.5"]).is_err());
        assert!(parse::<SettingsArgs>(&["--age-band-edges", "18"]).is_err());

        let l: LimitArgs = parse(&["--max-media-mib", "2", "--deadline-seconds", "7"]).unwrap();
        let l = l.limits();
        assert_eq!(l.max_media_bytes, 2 * MIB);
        assert_eq!(l.analysis_deadline, Duration::from_secs(7));
        assert_eq!(l.fetch_timeout, Limits::default().fetch_timeout);
        assert_eq!(LimitArgs::default().limits(), Limits::default());
    }

    #[test]
    fn overrides_are_checked_against_the_table_bounds() {
        for e in settings() {
            let Some((lo, hi)) = e.job else { continue };
            for (v, ok) in [
                (lo, true),
                (hi, true),
                (lo - 1e-9, false),
                (hi + 1e-9, false),
            ] {
                let o: SettingsOverrides =
                    serde_json::from_value(serde_json::json!({ e.name: v })).unwrap();
                assert_eq!(o.check().is_ok(), ok, "{} = {v}", e.name);
            }
        }
        let nan = SettingsOverrides {
            sample_rate: Some(f64::NAN),
            ..Default::default()
        };
        assert!(nan.check().is_err());
    }
}
