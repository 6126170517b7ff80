-- Coders in a browser (`regard coding serve`): coder accounts and sessions, versioned coding
-- schemes, an audit trail of every label, two coders per person with adjudication, work queues,
-- and the origin figures with their coverage. Still no image anywhere: a coder's face view is
-- rendered from the source media on each request and never stored.

-- The categories of each scheme stay in regard.coding_scheme (the one place to edit them, with
-- their display labels in regard.label); every change to a scheme's rows bumps its version, and
-- each label records the version it was given under.
CREATE TABLE regard.coding_scheme_version (
    attribute  text PRIMARY KEY,
    version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE regard.coding_scheme_version IS
    'Version of each coding scheme: bumped by a trigger whenever a row of regard.coding_scheme for that attribute changes.';

-- Corrections of the model's perceived age band by coders: the bands of the default settings.
INSERT INTO regard.coding_scheme (attribute, label, description, position) VALUES
    ('age_band', 'unknown', 'The coder cannot or does not want to say.', 0),
    ('age_band', '0-17', 'Apparent age 0-17.', 1),
    ('age_band', '18-29', 'Apparent age 18-29.', 2),
    ('age_band', '30-44', 'Apparent age 30-44.', 3),
    ('age_band', '45-59', 'Apparent age 45-59.', 4),
    ('age_band', '60+', 'Apparent age 60 and over.', 5)
ON CONFLICT DO NOTHING;

INSERT INTO regard.coding_scheme_version (attribute)
SELECT DISTINCT attribute FROM regard.coding_scheme;

CREATE FUNCTION regard.bump_coding_scheme_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regard.coding_scheme_version AS v (attribute)
    SELECT DISTINCT attribute FROM (
        SELECT attribute FROM new_rows UNION ALL SELECT attribute FROM old_rows) changed
    ON CONFLICT (attribute) DO UPDATE SET version = v.version + 1, changed_at = now();
    RETURN NULL;
END
$$;
-- Transition tables need one trigger per event.
CREATE FUNCTION regard.bump_coding_scheme_version_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regard.coding_scheme_version AS v (attribute)
    SELECT DISTINCT attribute FROM new_rows
    ON CONFLICT (attribute) DO UPDATE SET version = v.version + 1, changed_at = now();
    RETURN NULL;
END
$$;
CREATE FUNCTION regard.bump_coding_scheme_version_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regard.coding_scheme_version AS v (attribute)
    SELECT DISTINCT attribute FROM old_rows
    ON CONFLICT (attribute) DO UPDATE SET version = v.version + 1, changed_at = now();
    RETURN NULL;
END
$$;
CREATE TRIGGER coding_scheme_version_update AFTER UPDATE ON regard.coding_scheme
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION regard.bump_coding_scheme_version();
CREATE TRIGGER coding_scheme_version_insert AFTER INSERT ON regard.coding_scheme
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION regard.bump_coding_scheme_version_insert();
CREATE TRIGGER coding_scheme_version_delete AFTER DELETE ON regard.coding_scheme
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION regard.bump_coding_scheme_version_delete();

-- Coder accounts (`regard coding add-coder`): argon2 password hashes, never passwords.
CREATE TABLE regard.coder (
    coder_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    is_admin      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A signed-in browser. The cookie carries the session id signed with the server's key; the row
-- lets log-out end the session for good (a copied cookie is dead too).
CREATE TABLE regard.coder_session (
    session_id uuid PRIMARY KEY,
    coder_id   bigint NOT NULL REFERENCES regard.coder ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at   timestamptz
);
CREATE INDEX coder_session_expires_idx ON regard.coder_session (expires_at);

-- Labels given before this migration were given under version 1 of their scheme.
ALTER TABLE regard.coder_label ADD COLUMN scheme_version integer NOT NULL DEFAULT 1;
CREATE INDEX coder_label_coder_idx ON regard.coder_label (coder, attribute, coded_at DESC);

-- The audit trail: every label given, undone or adjudicated, with who, when and the scheme
-- version. Per-person rows: removed with the person by retention.
CREATE TABLE regard.coder_label_event (
    event_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id      bigint NOT NULL REFERENCES regard.person ON DELETE CASCADE,
    attribute      text NOT NULL,
    coder          text NOT NULL,
    action         text NOT NULL CHECK (action IN ('label', 'undo', 'adjudicate', 'import')),
    label          text,
    scheme_version integer NOT NULL,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX coder_label_event_person_idx ON regard.coder_label_event (person_id, attribute);

-- The label an admin chose where two coders disagreed.
CREATE TABLE regard.adjudication (
    person_id      bigint NOT NULL REFERENCES regard.person ON DELETE CASCADE,
    attribute      text NOT NULL,
    label          text NOT NULL,
    adjudicator    text NOT NULL,
    scheme_version integer NOT NULL,
    decided_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, attribute),
    FOREIGN KEY (attribute, label) REFERENCES regard.coding_scheme (attribute, label) ON UPDATE CASCADE
);

-- A coder's work queue for one scheme: the persons picked by a filter (festival, edition,
-- section, film), in order. Removed by retention with the persons, and as a whole when older
-- than the retention age.
CREATE TABLE regard.coding_queue (
    coder_id  bigint NOT NULL REFERENCES regard.coder ON DELETE CASCADE,
    attribute text NOT NULL,
    person_id bigint NOT NULL REFERENCES regard.person ON DELETE CASCADE,
    position  bigint NOT NULL,
    skipped   boolean NOT NULL DEFAULT false,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (coder_id, attribute, person_id)
);
CREATE INDEX coding_queue_order_idx ON regard.coding_queue (coder_id, attribute, skipped, position);

-- Settings of the coding figures, editable in the database (the views read them).
CREATE TABLE regard.coding_setting (
    name        text PRIMARY KEY,
    value       double precision NOT NULL,
    description text NOT NULL
);
INSERT INTO regard.coding_setting (name, value, description) VALUES
    ('origin_min_coverage', 0.8,
     'Below this share of faces/persons with a decided perceived origin, a festival''s origin figures are flagged incomplete (0-1).');

-- The coder label that counts for each person and attribute: an admin's adjudication, else the
-- label every coder who decided agrees on (two or more: agreed; one: single). Coders who
-- disagree and no adjudication yet: disputed, no label (the model's, if any, stays).
CREATE VIEW regard.person_coded_label AS
WITH decided AS (
    SELECT person_id, attribute, count(*) AS coders, count(DISTINCT label) AS labels,
           min(label) AS label
    FROM regard.coder_label
    WHERE label <> 'unknown'
    GROUP BY person_id, attribute
)
SELECT
    coalesce(a.person_id, d.person_id) AS person_id,
    coalesce(a.attribute, d.attribute) AS attribute,
    CASE WHEN a.label IS NOT NULL THEN a.label WHEN d.labels = 1 THEN d.label END AS label,
    CASE WHEN a.label IS NOT NULL THEN 'adjudicated'
         WHEN d.labels = 1 AND d.coders >= 2 THEN 'agreed'
         WHEN d.labels = 1 THEN 'single'
         ELSE 'disputed' END AS basis,
    coalesce(d.coders, 0) AS coders
FROM regard.adjudication a
FULL JOIN decided d ON d.person_id = a.person_id AND d.attribute = a.attribute;

COMMENT ON VIEW regard.person_coded_label IS
    'Per face/person and attribute, the coders'' label that counts: adjudicated > agreed (two or more coders, same label) > single coder. Disputed (coders disagree, not adjudicated): label NULL, the model''s estimate stays. A coder''s unknown (unsure) is no label.';
COMMENT ON COLUMN regard.person_coded_label.person_id IS 'The face/person (regard.person).';
COMMENT ON COLUMN regard.person_coded_label.attribute IS 'The coded attribute (origin, gender, age_band).';
COMMENT ON COLUMN regard.person_coded_label.label IS 'The label that counts; NULL when disputed.';
COMMENT ON COLUMN regard.person_coded_label.basis IS 'adjudicated, agreed, single or disputed.';
COMMENT ON COLUMN regard.person_coded_label.coders IS 'Coders who gave a decided label (unsure not counted).';

-- person_labels: the coders' label that counts (above) over the model's; age band corrections too.
CREATE OR REPLACE VIEW regard.person_labels AS
SELECT
    p.person_id,
    p.analysis_id,
    a.media_id,
    a.kind AS media_kind,
    a.source AS media_source,
    p.kind AS person_kind,
    p.number,
    (la.analysis_id IS NOT NULL) AS in_latest_analysis,
    coalesce(nullif(cg.label, 'unknown'), nullif(p.gender, 'unknown'), 'unknown') AS gender,
    CASE WHEN nullif(cg.label, 'unknown') IS NOT NULL THEN 'coder'
         WHEN p.gender <> 'unknown' THEN 'model'
         ELSE 'unknown' END AS gender_source,
    p.gender AS model_gender,
    p.gender_p_female,
    p.gender_p_male,
    p.age_years,
    coalesce(nullif(ca.label, 'unknown'), p.age_band) AS age_band,
    coalesce(nullif(co.label, 'unknown'), nullif(p.origin, 'unknown'), 'unknown') AS origin,
    CASE WHEN nullif(co.label, 'unknown') IS NOT NULL THEN 'coder'
         WHEN p.origin <> 'unknown' THEN 'model'
         ELSE 'unknown' END AS origin_source,
    p.face_px,
    p.face_area_px,
    p.first_seen_s,
    p.key_frame_s,
    p.screen_time_s,
    p.prominence_s,
    p.recorded_at
FROM regard.person p
JOIN regard.analysis a USING (analysis_id)
LEFT JOIN regard.latest_analysis la ON la.analysis_id = p.analysis_id
LEFT JOIN regard.person_coded_label cg ON cg.person_id = p.person_id AND cg.attribute = 'gender'
LEFT JOIN regard.person_coded_label ca ON ca.person_id = p.person_id AND ca.attribute = 'age_band'
LEFT JOIN regard.person_coded_label co ON co.person_id = p.person_id AND co.attribute = 'origin';

COMMENT ON VIEW regard.person_labels IS
    'Each poster face and trailer person with the label that counts: the coders'' (adjudicated > agreed > single, see regard.person_coded_label), else the model''s, else unknown (the *_source columns say which). Deleted by retention; aggregates stay in regard.representation.';
COMMENT ON COLUMN regard.person_labels.age_band IS 'Apparent age band: a coder''s correction (regard.person_coded_label), else the model''s.';

-- Wilson score interval (95%) of k successes in n: never outside [0, 1], not degenerate at 0 or n.
CREATE FUNCTION regard.wilson_low(k double precision, n double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(0, ((k / n) + 1.920729 / n
        - 1.959964 * sqrt((k / n) * (1 - k / n) / n + 0.960365 / (n * n))) / (1 + 3.841459 / n))
    WHERE n > 0
$$;
CREATE FUNCTION regard.wilson_high(k double precision, n double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT least(1, ((k / n) + 1.920729 / n
        + 1.959964 * sqrt((k / n) * (1 - k / n) / n + 0.960365 / (n * n))) / (1 + 3.841459 / n))
    WHERE n > 0
$$;
COMMENT ON FUNCTION regard.wilson_low(double precision, double precision) IS
    'Lower end of the 95% Wilson score interval of k / n; NULL when n = 0.';
COMMENT ON FUNCTION regard.wilson_high(double precision, double precision) IS
    'Upper end of the 95% Wilson score interval of k / n; NULL when n = 0.';

-- Perceived origin per festival edition, poster faces and trailer persons as separate rows,
-- from the coders' labels (regard infers no origin), with the coverage beside each share.
CREATE VIEW regard.festival_origin_representation AS
WITH parts AS (
    SELECT festival, edition, 'poster'::text AS media_kind, category, films,
           poster_faces AS persons, poster_faces_decided AS decided,
           poster_faces_unknown AS undecided, poster_faces_share AS share,
           poster_faces_share_ci_low AS ci_low, poster_faces_share_ci_high AS ci_high
    FROM regard.festival_edition_representation WHERE attribute = 'origin'
    UNION ALL
    SELECT festival, edition, 'trailer', category, films,
           trailer_persons, trailer_persons_decided, trailer_persons_unknown,
           trailer_persons_share, trailer_persons_share_ci_low, trailer_persons_share_ci_high
    FROM regard.festival_edition_representation WHERE attribute = 'origin'
)
SELECT
    p.festival,
    p.edition,
    p.media_kind,
    p.category,
    p.films,
    p.persons,
    p.decided,
    p.decided + p.undecided AS total,
    p.share,
    CASE WHEN p.category <> 'unknown' THEN
        least(regard.wilson_low(p.persons, p.decided), coalesce(p.ci_low, 1)) END AS share_ci_low,
    CASE WHEN p.category <> 'unknown' THEN
        greatest(regard.wilson_high(p.persons, p.decided), coalesce(p.ci_high, 0)) END AS share_ci_high,
    p.decided::double precision / nullif(p.decided + p.undecided, 0) AS coverage,
    coalesce(p.decided::double precision / nullif(p.decided + p.undecided, 0), 0)
        < (SELECT value FROM regard.coding_setting WHERE name = 'origin_min_coverage') AS incomplete
FROM parts p
WHERE p.decided + p.undecided > 0;

COMMENT ON VIEW regard.festival_origin_representation IS
    'Perceived origin per festival edition, as coded by people (regard infers no origin): one row per media kind (poster faces, trailer persons) and category, the share among faces/persons with a decided origin, its 95% interval, and the coverage (share of faces/persons coded). Flagged incomplete below regard.coding_setting origin_min_coverage.';
COMMENT ON COLUMN regard.festival_origin_representation.festival IS 'Festival name.';
COMMENT ON COLUMN regard.festival_origin_representation.edition IS 'Festival edition (year).';
COMMENT ON COLUMN regard.festival_origin_representation.media_kind IS 'poster (faces on posters) or trailer (persons in trailers).';
COMMENT ON COLUMN regard.festival_origin_representation.category IS 'A coding_scheme origin category, or unknown (not coded, unsure or disputed).';
COMMENT ON COLUMN regard.festival_origin_representation.films IS 'Films of the edition with figures.';
COMMENT ON COLUMN regard.festival_origin_representation.persons IS 'Faces/persons in this category.';
COMMENT ON COLUMN regard.festival_origin_representation.decided IS 'Faces/persons with a decided origin: denominator of share.';
COMMENT ON COLUMN regard.festival_origin_representation.total IS 'All faces/persons of the edition''s latest analyses of this media kind.';
COMMENT ON COLUMN regard.festival_origin_representation.share IS 'persons / decided (0-1); NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_origin_representation.share_ci_low IS '95% interval, low end: the Wilson interval of persons / decided (the coded faces as a sample of all), widened to the between-film interval of the views when that is wider.';
COMMENT ON COLUMN regard.festival_origin_representation.share_ci_high IS '95% interval, high end (see share_ci_low).';
COMMENT ON COLUMN regard.festival_origin_representation.coverage IS 'decided / total (0-1): the share of faces/persons coded.';
COMMENT ON COLUMN regard.festival_origin_representation.incomplete IS 'True when coverage is below regard.coding_setting origin_min_coverage: the figures do not speak for the edition yet.';

GRANT SELECT ON regard.person_coded_label, regard.festival_origin_representation TO regard_metabase;
