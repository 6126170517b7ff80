-- Views for analysts (Metabase). Every share sits beside its denominator and its unknowns:
-- a share is never shown alone. Shares are among DECIDED labels (unknown excluded from the
-- denominator); the unknown count says how much the share leaves out.

-- The latest succeeded analysis of each media file (a newer model set supersedes an older one).
CREATE VIEW regard.latest_analysis AS
SELECT DISTINCT ON (a.media_id)
    a.analysis_id,
    a.media_id,
    m.content_sha256,
    a.kind AS media_kind,
    a.source,
    a.pipeline_version,
    a.model_set_sha256,
    a.settings_sha256,
    a.person_count,
    a.partial,
    a.recorded_at
FROM regard.analysis a
JOIN regard.media m USING (media_id)
WHERE a.status = 'succeeded'
ORDER BY a.media_id, a.recorded_at DESC, a.analysis_id DESC;

COMMENT ON VIEW regard.latest_analysis IS
    'The latest succeeded analysis of each media file. Older model sets stay in regard.analysis.';
COMMENT ON COLUMN regard.latest_analysis.person_count IS
    'Faces on a poster, distinct persons in a trailer.';

-- Representation rows of the latest analyses, with the per-analysis sums that shares need.
CREATE VIEW regard.latest_representation AS
SELECT
    la.analysis_id,
    la.media_id,
    la.media_kind,
    r.attribute,
    r.category,
    r.label_source,
    r.coded_persons,
    r.total_faces,
    r.unknown_faces,
    r.faces,
    r.face_area_px,
    coalesce(sum(r.face_area_px) FILTER (WHERE r.category <> 'unknown') OVER w, 0) AS decided_face_area_px,
    coalesce(sum(r.face_area_px) FILTER (WHERE r.category = 'unknown') OVER w, 0) AS unknown_face_area_px,
    r.faces_share_ci_low,
    r.faces_share_ci_high,
    r.face_area_share_ci_low,
    r.face_area_share_ci_high,
    r.total_persons,
    r.unknown_persons,
    r.persons,
    r.person_seconds,
    coalesce(sum(r.person_seconds) FILTER (WHERE r.category <> 'unknown') OVER w, 0) AS decided_person_seconds,
    coalesce(sum(r.person_seconds) FILTER (WHERE r.category = 'unknown') OVER w, 0) AS unknown_person_seconds,
    r.screen_time_s,
    r.persons_share_ci_low,
    r.persons_share_ci_high,
    r.screen_time_share_ci_low,
    r.screen_time_share_ci_high
FROM regard.latest_analysis la
JOIN regard.representation r USING (analysis_id)
WINDOW w AS (PARTITION BY r.analysis_id, r.attribute);

COMMENT ON VIEW regard.latest_representation IS
    'Representation rows (analysis x attribute x category) of the latest succeeded analysis of each media file.';

-- Per film: posters and trailers side by side.
CREATE VIEW regard.film_representation AS
SELECT
    f.film_id,
    f.title AS film_title,
    f.year AS film_year,
    f.imdb_id,
    f.tmdb_id,
    lr.attribute,
    lr.category,
    count(*) FILTER (WHERE lr.media_kind = 'poster') AS posters,
    coalesce(sum(lr.faces), 0) AS poster_faces,
    coalesce(sum(lr.total_faces - lr.unknown_faces), 0) AS poster_faces_decided,
    coalesce(sum(lr.unknown_faces), 0) AS poster_faces_unknown,
    CASE WHEN lr.category <> 'unknown'
        THEN sum(lr.faces)::double precision / nullif(sum(lr.total_faces - lr.unknown_faces), 0) END
        AS poster_faces_share,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'poster') = 1 THEN max(lr.faces_share_ci_low) END
        AS poster_faces_share_ci_low,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'poster') = 1 THEN max(lr.faces_share_ci_high) END
        AS poster_faces_share_ci_high,
    coalesce(sum(lr.face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) AS poster_face_area_px,
    coalesce(sum(lr.decided_face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) AS poster_face_area_decided_px,
    coalesce(sum(lr.unknown_face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) AS poster_face_area_unknown_px,
    CASE WHEN lr.category <> 'unknown'
        THEN sum(lr.face_area_px) FILTER (WHERE lr.media_kind = 'poster')
             / nullif(sum(lr.decided_face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) END
        AS poster_face_area_share,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'poster') = 1 THEN max(lr.face_area_share_ci_low) END
        AS poster_face_area_share_ci_low,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'poster') = 1 THEN max(lr.face_area_share_ci_high) END
        AS poster_face_area_share_ci_high,
    count(*) FILTER (WHERE lr.media_kind = 'trailer') AS trailers,
    coalesce(sum(lr.persons), 0) AS trailer_persons,
    coalesce(sum(lr.total_persons - lr.unknown_persons), 0) AS trailer_persons_decided,
    coalesce(sum(lr.unknown_persons), 0) AS trailer_persons_unknown,
    CASE WHEN lr.category <> 'unknown'
        THEN sum(lr.persons)::double precision / nullif(sum(lr.total_persons - lr.unknown_persons), 0) END
        AS trailer_persons_share,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'trailer') = 1 THEN max(lr.persons_share_ci_low) END
        AS trailer_persons_share_ci_low,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'trailer') = 1 THEN max(lr.persons_share_ci_high) END
        AS trailer_persons_share_ci_high,
    coalesce(sum(lr.person_seconds), 0) AS trailer_person_seconds,
    coalesce(sum(lr.decided_person_seconds) FILTER (WHERE lr.media_kind = 'trailer'), 0) AS trailer_person_seconds_decided,
    coalesce(sum(lr.unknown_person_seconds) FILTER (WHERE lr.media_kind = 'trailer'), 0) AS trailer_person_seconds_unknown,
    CASE WHEN lr.category <> 'unknown'
        THEN sum(lr.person_seconds)
             / nullif(sum(lr.decided_person_seconds) FILTER (WHERE lr.media_kind = 'trailer'), 0) END
        AS trailer_screen_time_share,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'trailer') = 1 THEN max(lr.screen_time_share_ci_low) END
        AS trailer_screen_time_share_ci_low,
    CASE WHEN count(*) FILTER (WHERE lr.media_kind = 'trailer') = 1 THEN max(lr.screen_time_share_ci_high) END
        AS trailer_screen_time_share_ci_high,
    coalesce(sum(lr.coded_persons), 0) AS coded_persons
FROM regard.film f
JOIN regard.film_media fm USING (film_id)
JOIN regard.latest_representation lr USING (media_id)
GROUP BY f.film_id, lr.attribute, lr.category;

COMMENT ON VIEW regard.film_representation IS
    'Per film, attribute and category: the latest analyses of its posters and trailers side by side. Shares are among decided labels; the *_unknown columns count what each share leaves out.';
COMMENT ON COLUMN regard.film_representation.posters IS 'Posters of the film with a succeeded analysis.';
COMMENT ON COLUMN regard.film_representation.poster_faces IS 'Faces of this category on the film''s posters.';
COMMENT ON COLUMN regard.film_representation.poster_faces_decided IS 'Denominator of poster_faces_share: faces with a decided label.';
COMMENT ON COLUMN regard.film_representation.poster_faces_unknown IS 'Faces whose label is unknown (too small, low confidence, not coded).';
COMMENT ON COLUMN regard.film_representation.poster_faces_share IS 'poster_faces / poster_faces_decided.';
COMMENT ON COLUMN regard.film_representation.poster_faces_share_ci_low IS '95% interval, lower bound (only when the film has one poster; NULL until the statistics fill it).';
COMMENT ON COLUMN regard.film_representation.poster_face_area_px IS 'Face area (pixels) of this category on the posters.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_decided_px IS 'Denominator of poster_face_area_share: face area with a decided label.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_unknown_px IS 'Face area whose label is unknown.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_share IS 'poster_face_area_px / poster_face_area_decided_px.';
COMMENT ON COLUMN regard.film_representation.trailer_persons IS 'Distinct persons of this category, summed over the film''s trailers (a person in two trailers counts twice).';
COMMENT ON COLUMN regard.film_representation.trailer_persons_decided IS 'Denominator of trailer_persons_share: persons with a decided label.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_unknown IS 'Persons whose label is unknown.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_share IS 'trailer_persons / trailer_persons_decided.';
COMMENT ON COLUMN regard.film_representation.trailer_person_seconds IS 'Screen time of this category in person-seconds (two persons on screen for 1 s count 2 s).';
COMMENT ON COLUMN regard.film_representation.trailer_person_seconds_decided IS 'Denominator of trailer_screen_time_share: person-seconds with a decided label.';
COMMENT ON COLUMN regard.film_representation.trailer_person_seconds_unknown IS 'Person-seconds whose label is unknown.';
COMMENT ON COLUMN regard.film_representation.trailer_screen_time_share IS 'trailer_person_seconds / trailer_person_seconds_decided.';
COMMENT ON COLUMN regard.film_representation.coded_persons IS 'Faces and persons whose label for this attribute comes from a human coder.';

-- Per festival edition and section. A film selected without a section has section NULL.
CREATE VIEW regard.festival_section_representation AS
SELECT
    fe.festival,
    fe.edition,
    fs.section,
    fr.attribute,
    fr.category,
    count(DISTINCT fr.film_id) AS films,
    sum(fr.posters)::bigint AS posters,
    sum(fr.poster_faces)::bigint AS poster_faces,
    sum(fr.poster_faces_decided)::bigint AS poster_faces_decided,
    sum(fr.poster_faces_unknown)::bigint AS poster_faces_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.poster_faces)::double precision / nullif(sum(fr.poster_faces_decided), 0) END
        AS poster_faces_share,
    sum(fr.poster_face_area_px) AS poster_face_area_px,
    sum(fr.poster_face_area_decided_px) AS poster_face_area_decided_px,
    sum(fr.poster_face_area_unknown_px) AS poster_face_area_unknown_px,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.poster_face_area_px) / nullif(sum(fr.poster_face_area_decided_px), 0) END
        AS poster_face_area_share,
    sum(fr.trailers)::bigint AS trailers,
    sum(fr.trailer_persons)::bigint AS trailer_persons,
    sum(fr.trailer_persons_decided)::bigint AS trailer_persons_decided,
    sum(fr.trailer_persons_unknown)::bigint AS trailer_persons_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.trailer_persons)::double precision / nullif(sum(fr.trailer_persons_decided), 0) END
        AS trailer_persons_share,
    sum(fr.trailer_person_seconds) AS trailer_person_seconds,
    sum(fr.trailer_person_seconds_decided) AS trailer_person_seconds_decided,
    sum(fr.trailer_person_seconds_unknown) AS trailer_person_seconds_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.trailer_person_seconds) / nullif(sum(fr.trailer_person_seconds_decided), 0) END
        AS trailer_screen_time_share,
    -- Room for intervals on pooled shares; the statistics module has no cluster-aware
    -- interval for pooled films yet, so these stay NULL rather than pretend.
    NULL::double precision AS poster_faces_share_ci_low,
    NULL::double precision AS poster_faces_share_ci_high,
    NULL::double precision AS trailer_persons_share_ci_low,
    NULL::double precision AS trailer_persons_share_ci_high,
    sum(fr.coded_persons)::bigint AS coded_persons
FROM regard.film_selection sel
JOIN regard.festival_edition fe USING (festival_edition_id)
LEFT JOIN regard.festival_section fs USING (festival_section_id)
JOIN regard.film_representation fr USING (film_id)
GROUP BY fe.festival_edition_id, fe.festival, fe.edition, fs.festival_section_id, fs.section,
         fr.attribute, fr.category;

COMMENT ON VIEW regard.festival_section_representation IS
    'Per festival edition and section (NULL section: selected without a section), attribute and category. Same columns as regard.film_representation, summed over the selected films; shares among decided labels. The *_ci_* columns are NULL: no pooled interval is computed yet.';

-- Per festival edition, every section together (a film counted once per edition).
CREATE VIEW regard.festival_edition_representation AS
SELECT
    fe.festival,
    fe.edition,
    fr.attribute,
    fr.category,
    count(DISTINCT fr.film_id) AS films,
    sum(fr.posters)::bigint AS posters,
    sum(fr.poster_faces)::bigint AS poster_faces,
    sum(fr.poster_faces_decided)::bigint AS poster_faces_decided,
    sum(fr.poster_faces_unknown)::bigint AS poster_faces_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.poster_faces)::double precision / nullif(sum(fr.poster_faces_decided), 0) END
        AS poster_faces_share,
    sum(fr.poster_face_area_px) AS poster_face_area_px,
    sum(fr.poster_face_area_decided_px) AS poster_face_area_decided_px,
    sum(fr.poster_face_area_unknown_px) AS poster_face_area_unknown_px,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.poster_face_area_px) / nullif(sum(fr.poster_face_area_decided_px), 0) END
        AS poster_face_area_share,
    sum(fr.trailers)::bigint AS trailers,
    sum(fr.trailer_persons)::bigint AS trailer_persons,
    sum(fr.trailer_persons_decided)::bigint AS trailer_persons_decided,
    sum(fr.trailer_persons_unknown)::bigint AS trailer_persons_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.trailer_persons)::double precision / nullif(sum(fr.trailer_persons_decided), 0) END
        AS trailer_persons_share,
    sum(fr.trailer_person_seconds) AS trailer_person_seconds,
    sum(fr.trailer_person_seconds_decided) AS trailer_person_seconds_decided,
    sum(fr.trailer_person_seconds_unknown) AS trailer_person_seconds_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.trailer_person_seconds) / nullif(sum(fr.trailer_person_seconds_decided), 0) END
        AS trailer_screen_time_share,
    NULL::double precision AS poster_faces_share_ci_low,
    NULL::double precision AS poster_faces_share_ci_high,
    NULL::double precision AS trailer_persons_share_ci_low,
    NULL::double precision AS trailer_persons_share_ci_high,
    sum(fr.coded_persons)::bigint AS coded_persons
FROM (SELECT DISTINCT film_id, festival_edition_id FROM regard.film_selection) sel
JOIN regard.festival_edition fe USING (festival_edition_id)
JOIN regard.film_representation fr USING (film_id)
GROUP BY fe.festival_edition_id, fe.festival, fe.edition, fr.attribute, fr.category;

COMMENT ON VIEW regard.festival_edition_representation IS
    'Per festival edition (all sections, each film once), attribute and category. Same columns as regard.festival_section_representation.';

-- Per film year.
CREATE VIEW regard.year_representation AS
SELECT
    fr.film_year,
    fr.attribute,
    fr.category,
    count(DISTINCT fr.film_id) AS films,
    sum(fr.posters)::bigint AS posters,
    sum(fr.poster_faces)::bigint AS poster_faces,
    sum(fr.poster_faces_decided)::bigint AS poster_faces_decided,
    sum(fr.poster_faces_unknown)::bigint AS poster_faces_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.poster_faces)::double precision / nullif(sum(fr.poster_faces_decided), 0) END
        AS poster_faces_share,
    sum(fr.poster_face_area_px) AS poster_face_area_px,
    sum(fr.poster_face_area_decided_px) AS poster_face_area_decided_px,
    sum(fr.poster_face_area_unknown_px) AS poster_face_area_unknown_px,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.poster_face_area_px) / nullif(sum(fr.poster_face_area_decided_px), 0) END
        AS poster_face_area_share,
    sum(fr.trailers)::bigint AS trailers,
    sum(fr.trailer_persons)::bigint AS trailer_persons,
    sum(fr.trailer_persons_decided)::bigint AS trailer_persons_decided,
    sum(fr.trailer_persons_unknown)::bigint AS trailer_persons_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.trailer_persons)::double precision / nullif(sum(fr.trailer_persons_decided), 0) END
        AS trailer_persons_share,
    sum(fr.trailer_person_seconds) AS trailer_person_seconds,
    sum(fr.trailer_person_seconds_decided) AS trailer_person_seconds_decided,
    sum(fr.trailer_person_seconds_unknown) AS trailer_person_seconds_unknown,
    CASE WHEN fr.category <> 'unknown'
        THEN sum(fr.trailer_person_seconds) / nullif(sum(fr.trailer_person_seconds_decided), 0) END
        AS trailer_screen_time_share,
    NULL::double precision AS poster_faces_share_ci_low,
    NULL::double precision AS poster_faces_share_ci_high,
    NULL::double precision AS trailer_persons_share_ci_low,
    NULL::double precision AS trailer_persons_share_ci_high,
    sum(fr.coded_persons)::bigint AS coded_persons
FROM regard.film_representation fr
GROUP BY fr.film_year, fr.attribute, fr.category;

COMMENT ON VIEW regard.year_representation IS
    'Per film year (NULL: year not given), attribute and category. Same columns as regard.festival_section_representation.';

-- Every face / person with the label that counts: a coder's over a model's, a model's over
-- unknown (a coder's "unknown" does not erase a model's decided label).
CREATE VIEW regard.person_labels AS
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
    p.age_band,
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
LEFT JOIN LATERAL (
    SELECT c.label FROM regard.coder_label c
    WHERE c.person_id = p.person_id AND c.attribute = 'gender'
    ORDER BY c.coded_at DESC, c.coder_label_id DESC LIMIT 1
) cg ON true
LEFT JOIN LATERAL (
    SELECT c.label FROM regard.coder_label c
    WHERE c.person_id = p.person_id AND c.attribute = 'origin'
    ORDER BY c.coded_at DESC, c.coder_label_id DESC LIMIT 1
) co ON true;

COMMENT ON VIEW regard.person_labels IS
    'Each poster face and trailer person with the label that counts: a coder''s, else the model''s, else unknown (the *_source columns say which). Deleted by retention; aggregates stay in regard.representation.';
COMMENT ON COLUMN regard.person_labels.origin_source IS 'coder, model (only if an operator configured a classifier) or unknown.';

-- Quality: failures still unresolved for their key.
CREATE VIEW regard.quality_failed_analyses AS
SELECT
    a.analysis_id,
    a.source,
    m.content_sha256,
    a.kind AS media_kind,
    a.error_code,
    a.error_message,
    a.attempts,
    a.pipeline_version,
    a.model_set_sha256,
    a.context -> 'film' ->> 'title' AS film_title,
    a.context -> 'festival' ->> 'festival' AS festival,
    a.recorded_at
FROM regard.analysis a
LEFT JOIN regard.media m USING (media_id)
WHERE a.status = 'failed';

COMMENT ON VIEW regard.quality_failed_analyses IS
    'Failed analyses (a later success for the same media, model set and settings replaces the failure).';

-- Quality per analysed media file: no face, share of unknown gender.
CREATE VIEW regard.quality_media AS
SELECT
    la.analysis_id,
    la.media_id,
    la.content_sha256,
    la.media_kind,
    la.source,
    la.person_count,
    (la.person_count = 0) AS no_face,
    la.partial,
    coalesce(g.unknown, 0) AS gender_unknown,
    coalesce(g.unknown, 0)::double precision / nullif(la.person_count, 0) AS gender_unknown_share
FROM regard.latest_analysis la
LEFT JOIN LATERAL (
    SELECT coalesce(max(r.unknown_faces), max(r.unknown_persons)) AS unknown
    FROM regard.representation r
    WHERE r.analysis_id = la.analysis_id AND r.attribute = 'gender'
) g ON true;

COMMENT ON VIEW regard.quality_media IS
    'Per media file (latest analysis): faces or persons found, whether none was, and how many have an unknown gender.';
COMMENT ON COLUMN regard.quality_media.gender_unknown_share IS 'gender_unknown / person_count (NULL when no face).';

CREATE VIEW regard.quality_summary AS
SELECT
    (SELECT count(*) FROM regard.latest_analysis) AS analysed_media,
    (SELECT count(*) FROM regard.quality_failed_analyses) AS failed_analyses,
    count(*) FILTER (WHERE q.media_kind = 'poster' AND q.no_face) AS posters_without_face,
    count(*) FILTER (WHERE q.media_kind = 'trailer' AND q.no_face) AS trailers_without_person,
    coalesce(sum(q.person_count), 0) AS faces_and_persons,
    coalesce(sum(q.gender_unknown), 0) AS gender_unknown,
    sum(q.gender_unknown)::double precision / nullif(sum(q.person_count), 0) AS gender_unknown_share
FROM regard.quality_media q;

COMMENT ON VIEW regard.quality_summary IS
    'One row: media analysed, failures, media without any face, and the share of faces/persons whose gender is unknown.';
