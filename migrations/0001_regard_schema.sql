-- regard's tables. Everything lives in the `regard` schema: the database is shared with the
-- association's other data, which regard never touches. Names are chosen for analysts reading
-- them in Metabase. No face image, crop or embedding is ever stored (no bytea column anywhere).

CREATE SCHEMA IF NOT EXISTS regard;

-- A film as the scraper (or the CLI user) describes it. `film_key` is the identity used to
-- merge jobs about the same film: the IMDb id, else the TMDb id, else title and year.
CREATE TABLE regard.film (
    film_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    film_key     text NOT NULL UNIQUE,
    title        text NOT NULL,
    year         integer,
    imdb_id      text,
    tmdb_id      bigint,
    external_ids jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX film_year_idx ON regard.film (year);
CREATE INDEX film_imdb_idx ON regard.film (imdb_id);
CREATE INDEX film_tmdb_idx ON regard.film (tmdb_id);

CREATE TABLE regard.festival_edition (
    festival_edition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    festival            text NOT NULL,
    edition             integer NOT NULL,
    UNIQUE (festival, edition)
);

CREATE TABLE regard.festival_section (
    festival_section_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    festival_edition_id bigint NOT NULL REFERENCES regard.festival_edition ON DELETE CASCADE,
    section             text NOT NULL,
    UNIQUE (festival_edition_id, section)
);

-- A film selected at a festival edition, in a section when the job names one.
CREATE TABLE regard.film_selection (
    film_selection_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    film_id             bigint NOT NULL REFERENCES regard.film ON DELETE CASCADE,
    festival_edition_id bigint NOT NULL REFERENCES regard.festival_edition ON DELETE CASCADE,
    festival_section_id bigint REFERENCES regard.festival_section ON DELETE CASCADE
);
-- NULL sections must collide too (PostgreSQL < 15 has no NULLS NOT DISTINCT).
CREATE UNIQUE INDEX film_selection_unique
    ON regard.film_selection (film_id, festival_edition_id, (coalesce(festival_section_id, 0)));
CREATE INDEX film_selection_edition_idx ON regard.film_selection (festival_edition_id);

-- A media file, identified by its content: the same bytes at two URLs are one media.
CREATE TABLE regard.media (
    media_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_sha256 text NOT NULL UNIQUE CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    -- NULL only for a file that failed before regard could tell what it was.
    kind           text CHECK (kind IN ('poster', 'trailer')),
    first_source   text NOT NULL,
    format         text,
    bytes          bigint,
    width          integer,
    height         integer,
    duration_s     double precision,
    frame_rate     double precision,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Which film a media file belongs to (a generic placeholder image may serve several films).
CREATE TABLE regard.film_media (
    film_id       bigint NOT NULL REFERENCES regard.film ON DELETE CASCADE,
    media_id      bigint NOT NULL REFERENCES regard.media ON DELETE CASCADE,
    source        text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (film_id, media_id)
);
CREATE INDEX film_media_media_idx ON regard.film_media (media_id);

-- One analysis of one media file by one model set with one set of settings. The result key is
-- (media, model set, settings): writing the same result again never adds a row.
CREATE TABLE regard.analysis (
    analysis_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL when the file failed before its content could be hashed (e.g. download refused).
    media_id            bigint REFERENCES regard.media ON DELETE CASCADE,
    source              text NOT NULL,
    kind                text CHECK (kind IN ('poster', 'trailer')),
    status              text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    error_code          text,
    error_message       text,
    -- Failures of the same key seen so far (a retry updates the row instead of adding one).
    attempts            integer NOT NULL DEFAULT 1,
    pipeline_version    text NOT NULL,
    runtime_sha256      text NOT NULL,
    model_set_sha256    text NOT NULL,
    settings_sha256     text NOT NULL,
    models              jsonb NOT NULL,
    settings            jsonb NOT NULL,
    job_id              text,
    -- The job's context (film, festival) as given, also for failures that have no media row.
    context             jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at          timestamptz,
    finished_at         timestamptz,
    stage_timings_s     jsonb NOT NULL DEFAULT '{}'::jsonb,
    analysed_duration_s double precision,
    sampled_frames      integer,
    sample_rate         double precision,
    shot_cuts           integer,
    partial             boolean NOT NULL DEFAULT false,
    decode_report       jsonb,
    -- Faces on a poster, distinct persons in a trailer.
    person_count        integer,
    -- The whole domain result, for traceability. Stripped of per-person data by retention.
    result              jsonb,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    persons_purged_at   timestamptz,
    CHECK ((status = 'failed') = (error_code IS NOT NULL)),
    CHECK (status = 'failed' OR (media_id IS NOT NULL AND kind IS NOT NULL AND result IS NOT NULL))
);
CREATE UNIQUE INDEX analysis_result_key
    ON regard.analysis (media_id, model_set_sha256, settings_sha256);
CREATE UNIQUE INDEX analysis_unhashed_failure_key
    ON regard.analysis (source, model_set_sha256, settings_sha256) WHERE media_id IS NULL;
CREATE INDEX analysis_latest_idx ON regard.analysis (media_id, status, recorded_at DESC);
CREATE INDEX analysis_recorded_idx ON regard.analysis (recorded_at);

-- One row per face on a poster or per distinct person in a trailer: what the models perceived.
-- Human coders' labels are in coder_label; the view regard.person_labels combines both.
CREATE TABLE regard.person (
    person_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    analysis_id           bigint NOT NULL REFERENCES regard.analysis ON DELETE CASCADE,
    kind                  text NOT NULL CHECK (kind IN ('poster_face', 'trailer_person')),
    -- Face number on the poster / person number in the trailer, from 1.
    number                integer NOT NULL,
    gender                text NOT NULL,
    gender_confidence     real,
    gender_p_female       real,
    gender_p_male         real,
    gender_unknown_reason text,
    age_years             real,
    age_band              text,
    -- Perceived origin from a model only when an operator configured one; else 'unknown'.
    origin                text NOT NULL DEFAULT 'unknown',
    origin_source         text NOT NULL CHECK (origin_source IN ('model', 'unknown')),
    origin_confidence     real,
    -- Every attribute estimate with its probabilities.
    attributes            jsonb NOT NULL,
    detection_score       real,
    -- Face height in pixels (median over the person's faces in a trailer).
    face_px               real,
    -- Face box (the key frame's box in a trailer): enough for a coder to find the person.
    box_x                 real NOT NULL,
    box_y                 real NOT NULL,
    box_width             real NOT NULL,
    box_height            real NOT NULL,
    face_area_px          double precision NOT NULL,
    first_seen_s          double precision,
    last_seen_s           double precision,
    key_frame_s           double precision,
    screen_time_s         double precision,
    prominence_s          double precision,
    frames                integer,
    tracks                integer,
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (analysis_id, number)
);
CREATE INDEX person_recorded_idx ON regard.person (recorded_at);

-- One row per analysis × attribute × category: the statistics the views aggregate. These rows
-- survive retention; they are recomputed when coders label persons (label_source = 'coder').
CREATE TABLE regard.representation (
    analysis_id                 bigint NOT NULL REFERENCES regard.analysis ON DELETE CASCADE,
    attribute                   text NOT NULL,
    category                    text NOT NULL,
    kind                        text NOT NULL CHECK (kind IN ('poster', 'trailer')),
    label_source                text NOT NULL DEFAULT 'model' CHECK (label_source IN ('model', 'coder')),
    -- Persons (faces) of this analysis whose label for this attribute came from a coder.
    coded_persons               integer NOT NULL DEFAULT 0,
    -- Posters
    total_faces                 integer,
    unknown_faces               integer,
    faces                       integer,
    soft_faces                  double precision,
    face_area_px                double precision,
    face_area_share             double precision,
    has_largest_face            boolean,
    faces_upper_third           integer,
    faces_central_third         integer,
    faces_share_ci_low          double precision,
    faces_share_ci_high         double precision,
    face_area_share_ci_low      double precision,
    face_area_share_ci_high     double precision,
    -- Trailers
    total_persons               integer,
    unknown_persons             integer,
    persons                     integer,
    soft_persons                double precision,
    screen_time_s               double precision,
    person_seconds              double precision,
    frame_share                 double precision,
    prominence_s                double precision,
    first_appearance_s          double precision,
    persons_share_ci_low        double precision,
    persons_share_ci_high       double precision,
    screen_time_share_ci_low    double precision,
    screen_time_share_ci_high   double precision,
    PRIMARY KEY (analysis_id, attribute, category)
);
CREATE INDEX representation_attribute_idx ON regard.representation (attribute, category);

-- The labels human coders may use, per attribute. The association sets its own list: the rows
-- seeded below are neutral placeholders, not a taxonomy. Edit this table (add, rename, delete
-- unused labels) to match the association's coding manual.
CREATE TABLE regard.coding_scheme (
    attribute   text NOT NULL,
    label       text NOT NULL,
    description text NOT NULL DEFAULT '',
    position    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (attribute, label)
);

INSERT INTO regard.coding_scheme (attribute, label, description, position) VALUES
    ('origin', 'unknown', 'The coder cannot or does not want to say.', 0),
    ('origin', 'placeholder_a', 'Placeholder: replace with a category of the association''s coding manual.', 1),
    ('origin', 'placeholder_b', 'Placeholder: replace with a category of the association''s coding manual.', 2),
    ('gender', 'unknown', 'The coder cannot or does not want to say.', 0),
    ('gender', 'female', 'Perceived as a woman.', 1),
    ('gender', 'male', 'Perceived as a man.', 2);

-- A human coder's label for one person and one attribute. Preferred over the model's label.
CREATE TABLE regard.coder_label (
    coder_label_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id      bigint NOT NULL REFERENCES regard.person ON DELETE CASCADE,
    attribute      text NOT NULL,
    label          text NOT NULL,
    coder          text NOT NULL,
    coded_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (attribute, label) REFERENCES regard.coding_scheme (attribute, label) ON UPDATE CASCADE,
    UNIQUE (person_id, attribute, coder)
);
CREATE INDEX coder_label_attribute_idx ON regard.coder_label (attribute, person_id);
