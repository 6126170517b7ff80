-- Intervals beside every share, also when many films are pooled.
--
-- Each representation row now keeps what an interval over many films needs, so that the views
-- can compute one after retention has deleted the per-person rows:
--   soft_n       items the soft share is computed over: faces/persons decided by a coder, or with
--                probabilities and big enough for the model to speak for;
--   soft_sum     Σ p over those items, p = P(category) (1 or 0 for a coder's label);
--   soft_var     Σ p(1−p): the variance of the true count if each item is Bernoulli(p);
--   soft_weight, soft_weighted_sum, soft_weighted_var: the same weighted by w = face area (px,
--                posters) or screen time (s, trailers): Σ w, Σ w·p, Σ w²·p(1−p).
-- NULL for `unknown` rows and for attributes without probabilities (age bands).

ALTER TABLE regard.representation
    ADD COLUMN soft_n            double precision,
    ADD COLUMN soft_sum          double precision,
    ADD COLUMN soft_var          double precision,
    ADD COLUMN soft_weight       double precision,
    ADD COLUMN soft_weighted_sum double precision,
    ADD COLUMN soft_weighted_var double precision;

COMMENT ON COLUMN regard.representation.soft_n IS
    'Faces/persons the soft share is over (coder-decided, or with probabilities and big enough).';
COMMENT ON COLUMN regard.representation.soft_sum IS 'Σ P(category) over those items (coder labels count 1 or 0).';
COMMENT ON COLUMN regard.representation.soft_var IS 'Σ P(1−P) over those items: variance of the count from classification.';
COMMENT ON COLUMN regard.representation.soft_weight IS 'Σ w over those items; w = face area in px (posters) or screen time in s (trailers).';
COMMENT ON COLUMN regard.representation.soft_weighted_sum IS 'Σ w·P(category) over those items.';
COMMENT ON COLUMN regard.representation.soft_weighted_var IS 'Σ w²·P(1−P) over those items.';

-- Standard error of a ratio share R = Σ S_f / Σ N_f pooled over clusters (films), from
--   (a) classification: Σ_f V_f (V_f = Σ p(1−p) of film f), and
--   (b) sampling of films: the linearisation (cluster) variance of a ratio estimator,
--       n/(n−1) · Σ_f (S_f − R·N_f)², using Σ(S−RN)² = ΣS² − 2RΣSN + R²ΣN²,
-- both divided by (Σ N_f)². With one cluster only (a) is counted. NULL when Σ N_f = 0.
CREATE FUNCTION regard.share_se(
    sum_s double precision, sum_n double precision, sum_v double precision,
    sum_s2 double precision, sum_sn double precision, sum_n2 double precision, clusters bigint)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN sum_n > 0 THEN
        sqrt(greatest(0,
            coalesce(sum_v, 0)
            + CASE WHEN clusters > 1 THEN
                  clusters::double precision / (clusters - 1)
                  * greatest(0, sum_s2 - 2 * (sum_s / sum_n) * sum_sn
                                + (sum_s / sum_n) ^ 2 * sum_n2)
              ELSE 0 END)) / sum_n
    END
$$;

COMMENT ON FUNCTION regard.share_se(double precision, double precision, double precision, double precision, double precision, double precision, bigint) IS
    'Standard error of the pooled share Σ S_f / Σ N_f over clusters (films): classification variance Σ V_f plus the between-film linearisation variance n/(n−1) Σ (S_f − R N_f)², over (Σ N_f)². The SQL counterpart of the Rust bootstrap (stats::interval::share_interval).';

-- 95% normal-approximation interval, clipped to [0, 1].
CREATE FUNCTION regard.share_ci_low(
    sum_s double precision, sum_n double precision, sum_v double precision,
    sum_s2 double precision, sum_sn double precision, sum_n2 double precision, clusters bigint)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(0, sum_s / sum_n
        - 1.959964 * regard.share_se(sum_s, sum_n, sum_v, sum_s2, sum_sn, sum_n2, clusters))
    WHERE sum_n > 0
$$;

CREATE FUNCTION regard.share_ci_high(
    sum_s double precision, sum_n double precision, sum_v double precision,
    sum_s2 double precision, sum_sn double precision, sum_n2 double precision, clusters bigint)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT least(1, sum_s / sum_n
        + 1.959964 * regard.share_se(sum_s, sum_n, sum_v, sum_s2, sum_sn, sum_n2, clusters))
    WHERE sum_n > 0
$$;

COMMENT ON FUNCTION regard.share_ci_low(double precision, double precision, double precision, double precision, double precision, double precision, bigint) IS
    '95% interval of a pooled share, lower bound: R − 1.96 · regard.share_se(...), at least 0.';
COMMENT ON FUNCTION regard.share_ci_high(double precision, double precision, double precision, double precision, double precision, double precision, bigint) IS
    '95% interval of a pooled share, upper bound: R + 1.96 · regard.share_se(...), at most 1.';

-- The views are rebuilt with the new columns; every column they had keeps its name and meaning.
DROP VIEW regard.year_representation;
DROP VIEW regard.festival_edition_representation;
DROP VIEW regard.festival_section_representation;
DROP VIEW regard.film_representation;
DROP VIEW regard.latest_representation;

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
    r.screen_time_share_ci_high,
    r.soft_n,
    r.soft_sum,
    r.soft_var,
    r.soft_weight,
    r.soft_weighted_sum,
    r.soft_weighted_var
FROM regard.latest_analysis la
JOIN regard.representation r USING (analysis_id)
WINDOW w AS (PARTITION BY r.analysis_id, r.attribute);

COMMENT ON VIEW regard.latest_representation IS
    'Representation rows (analysis x attribute x category) of the latest succeeded analysis of each media file, with the sums (soft_*) that pooled intervals need.';

-- Per film. Two kinds of share sit side by side:
--   *_share       among DECIDED labels (unknown excluded): a plain count ratio;
--   *_share_soft  Σ P / n over the items the model (or a coder) can speak for: the share the
--                 CLI reports, and the one the 95% interval (*_ci_low/high) belongs to.
-- The film's interval: with one media file of the kind, the exact interval stored with it
-- (Poisson-binomial or Monte Carlo, stats::interval); otherwise the normal approximation from
-- classification variance only (a film's media are not a sample of films).
CREATE VIEW regard.film_representation AS
WITH per_film AS (
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
        max(lr.faces_share_ci_low) AS stored_faces_ci_low,
        max(lr.faces_share_ci_high) AS stored_faces_ci_high,
        coalesce(sum(lr.face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) AS poster_face_area_px,
        coalesce(sum(lr.decided_face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) AS poster_face_area_decided_px,
        coalesce(sum(lr.unknown_face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) AS poster_face_area_unknown_px,
        CASE WHEN lr.category <> 'unknown'
            THEN sum(lr.face_area_px) FILTER (WHERE lr.media_kind = 'poster')
                 / nullif(sum(lr.decided_face_area_px) FILTER (WHERE lr.media_kind = 'poster'), 0) END
            AS poster_face_area_share,
        max(lr.face_area_share_ci_low) AS stored_area_ci_low,
        max(lr.face_area_share_ci_high) AS stored_area_ci_high,
        count(*) FILTER (WHERE lr.media_kind = 'trailer') AS trailers,
        coalesce(sum(lr.persons), 0) AS trailer_persons,
        coalesce(sum(lr.total_persons - lr.unknown_persons), 0) AS trailer_persons_decided,
        coalesce(sum(lr.unknown_persons), 0) AS trailer_persons_unknown,
        CASE WHEN lr.category <> 'unknown'
            THEN sum(lr.persons)::double precision / nullif(sum(lr.total_persons - lr.unknown_persons), 0) END
            AS trailer_persons_share,
        max(lr.persons_share_ci_low) AS stored_persons_ci_low,
        max(lr.persons_share_ci_high) AS stored_persons_ci_high,
        coalesce(sum(lr.person_seconds), 0) AS trailer_person_seconds,
        coalesce(sum(lr.decided_person_seconds) FILTER (WHERE lr.media_kind = 'trailer'), 0) AS trailer_person_seconds_decided,
        coalesce(sum(lr.unknown_person_seconds) FILTER (WHERE lr.media_kind = 'trailer'), 0) AS trailer_person_seconds_unknown,
        CASE WHEN lr.category <> 'unknown'
            THEN sum(lr.person_seconds)
                 / nullif(sum(lr.decided_person_seconds) FILTER (WHERE lr.media_kind = 'trailer'), 0) END
            AS trailer_screen_time_share,
        max(lr.screen_time_share_ci_low) AS stored_time_ci_low,
        max(lr.screen_time_share_ci_high) AS stored_time_ci_high,
        coalesce(sum(lr.coded_persons), 0) AS coded_persons,
        sum(lr.soft_n) FILTER (WHERE lr.media_kind = 'poster') AS poster_soft_n,
        sum(lr.soft_sum) FILTER (WHERE lr.media_kind = 'poster') AS poster_soft_sum,
        sum(lr.soft_var) FILTER (WHERE lr.media_kind = 'poster') AS poster_soft_var,
        sum(lr.soft_weight) FILTER (WHERE lr.media_kind = 'poster') AS poster_area_soft_weight,
        sum(lr.soft_weighted_sum) FILTER (WHERE lr.media_kind = 'poster') AS poster_area_soft_sum,
        sum(lr.soft_weighted_var) FILTER (WHERE lr.media_kind = 'poster') AS poster_area_soft_var,
        sum(lr.soft_n) FILTER (WHERE lr.media_kind = 'trailer') AS trailer_soft_n,
        sum(lr.soft_sum) FILTER (WHERE lr.media_kind = 'trailer') AS trailer_soft_sum,
        sum(lr.soft_var) FILTER (WHERE lr.media_kind = 'trailer') AS trailer_soft_var,
        sum(lr.soft_weight) FILTER (WHERE lr.media_kind = 'trailer') AS trailer_time_soft_weight,
        sum(lr.soft_weighted_sum) FILTER (WHERE lr.media_kind = 'trailer') AS trailer_time_soft_sum,
        sum(lr.soft_weighted_var) FILTER (WHERE lr.media_kind = 'trailer') AS trailer_time_soft_var
    FROM regard.film f
    JOIN regard.film_media fm USING (film_id)
    JOIN regard.latest_representation lr USING (media_id)
    GROUP BY f.film_id, lr.attribute, lr.category
)
SELECT
    film_id, film_title, film_year, imdb_id, tmdb_id, attribute, category,
    posters,
    poster_faces,
    poster_faces_decided,
    poster_faces_unknown,
    poster_faces_share,
    CASE WHEN posters = 1 AND stored_faces_ci_low IS NOT NULL THEN stored_faces_ci_low
         ELSE regard.share_ci_low(poster_soft_sum, poster_soft_n, poster_soft_var, 0, 0, 0, 1) END
        AS poster_faces_share_ci_low,
    CASE WHEN posters = 1 AND stored_faces_ci_high IS NOT NULL THEN stored_faces_ci_high
         ELSE regard.share_ci_high(poster_soft_sum, poster_soft_n, poster_soft_var, 0, 0, 0, 1) END
        AS poster_faces_share_ci_high,
    poster_face_area_px,
    poster_face_area_decided_px,
    poster_face_area_unknown_px,
    poster_face_area_share,
    CASE WHEN posters = 1 AND stored_area_ci_low IS NOT NULL THEN stored_area_ci_low
         ELSE regard.share_ci_low(poster_area_soft_sum, poster_area_soft_weight, poster_area_soft_var, 0, 0, 0, 1) END
        AS poster_face_area_share_ci_low,
    CASE WHEN posters = 1 AND stored_area_ci_high IS NOT NULL THEN stored_area_ci_high
         ELSE regard.share_ci_high(poster_area_soft_sum, poster_area_soft_weight, poster_area_soft_var, 0, 0, 0, 1) END
        AS poster_face_area_share_ci_high,
    trailers,
    trailer_persons,
    trailer_persons_decided,
    trailer_persons_unknown,
    trailer_persons_share,
    CASE WHEN trailers = 1 AND stored_persons_ci_low IS NOT NULL THEN stored_persons_ci_low
         ELSE regard.share_ci_low(trailer_soft_sum, trailer_soft_n, trailer_soft_var, 0, 0, 0, 1) END
        AS trailer_persons_share_ci_low,
    CASE WHEN trailers = 1 AND stored_persons_ci_high IS NOT NULL THEN stored_persons_ci_high
         ELSE regard.share_ci_high(trailer_soft_sum, trailer_soft_n, trailer_soft_var, 0, 0, 0, 1) END
        AS trailer_persons_share_ci_high,
    trailer_person_seconds,
    trailer_person_seconds_decided,
    trailer_person_seconds_unknown,
    trailer_screen_time_share,
    CASE WHEN trailers = 1 AND stored_time_ci_low IS NOT NULL THEN stored_time_ci_low
         ELSE regard.share_ci_low(trailer_time_soft_sum, trailer_time_soft_weight, trailer_time_soft_var, 0, 0, 0, 1) END
        AS trailer_screen_time_share_ci_low,
    CASE WHEN trailers = 1 AND stored_time_ci_high IS NOT NULL THEN stored_time_ci_high
         ELSE regard.share_ci_high(trailer_time_soft_sum, trailer_time_soft_weight, trailer_time_soft_var, 0, 0, 0, 1) END
        AS trailer_screen_time_share_ci_high,
    coded_persons,
    poster_soft_sum / nullif(poster_soft_n, 0) AS poster_faces_share_soft,
    poster_area_soft_sum / nullif(poster_area_soft_weight, 0) AS poster_face_area_share_soft,
    trailer_soft_sum / nullif(trailer_soft_n, 0) AS trailer_persons_share_soft,
    trailer_time_soft_sum / nullif(trailer_time_soft_weight, 0) AS trailer_screen_time_share_soft,
    poster_soft_n, poster_soft_sum, poster_soft_var,
    poster_area_soft_weight, poster_area_soft_sum, poster_area_soft_var,
    trailer_soft_n, trailer_soft_sum, trailer_soft_var,
    trailer_time_soft_weight, trailer_time_soft_sum, trailer_time_soft_var
FROM per_film;

COMMENT ON VIEW regard.film_representation IS
    'Per film, attribute and category: the latest analyses of its posters and trailers side by side. *_share: among decided labels; *_share_soft: Σ P / n over the items the model or a coder can speak for, the figure the 95% interval (*_ci_low/high) belongs to; the *_unknown columns count what each share leaves out. Interval: the exact one stored with a single media file, else a normal approximation from classification variance. Perceived, not self-declared, gender.';
COMMENT ON COLUMN regard.film_representation.posters IS 'Posters of the film with a succeeded analysis.';
COMMENT ON COLUMN regard.film_representation.poster_faces IS 'Faces of this category on the film''s posters.';
COMMENT ON COLUMN regard.film_representation.poster_faces_decided IS 'Denominator of poster_faces_share: faces with a decided label.';
COMMENT ON COLUMN regard.film_representation.poster_faces_unknown IS 'Faces whose label is unknown (too small, low confidence, not coded).';
COMMENT ON COLUMN regard.film_representation.poster_faces_share IS 'poster_faces / poster_faces_decided.';
COMMENT ON COLUMN regard.film_representation.poster_faces_share_ci_low IS '95% interval of poster_faces_share_soft, lower bound.';
COMMENT ON COLUMN regard.film_representation.poster_faces_share_ci_high IS '95% interval of poster_faces_share_soft, upper bound.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_px IS 'Face area (pixels) of this category on the posters.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_decided_px IS 'Denominator of poster_face_area_share: face area with a decided label.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_unknown_px IS 'Face area whose label is unknown.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_share IS 'poster_face_area_px / poster_face_area_decided_px.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_share_ci_low IS '95% interval of poster_face_area_share_soft, lower bound.';
COMMENT ON COLUMN regard.film_representation.trailer_persons IS 'Distinct persons of this category, summed over the film''s trailers (a person in two trailers counts twice).';
COMMENT ON COLUMN regard.film_representation.trailer_persons_decided IS 'Denominator of trailer_persons_share: persons with a decided label.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_unknown IS 'Persons whose label is unknown.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_share IS 'trailer_persons / trailer_persons_decided.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_share_ci_low IS '95% interval of trailer_persons_share_soft, lower bound.';
COMMENT ON COLUMN regard.film_representation.trailer_person_seconds IS 'Screen time of this category in person-seconds (two persons on screen for 1 s count 2 s).';
COMMENT ON COLUMN regard.film_representation.trailer_person_seconds_decided IS 'Denominator of trailer_screen_time_share: person-seconds with a decided label.';
COMMENT ON COLUMN regard.film_representation.trailer_person_seconds_unknown IS 'Person-seconds whose label is unknown.';
COMMENT ON COLUMN regard.film_representation.trailer_screen_time_share IS 'trailer_person_seconds / trailer_person_seconds_decided.';
COMMENT ON COLUMN regard.film_representation.trailer_screen_time_share_ci_low IS '95% interval of trailer_screen_time_share_soft, lower bound.';
COMMENT ON COLUMN regard.film_representation.coded_persons IS 'Faces and persons whose label for this attribute comes from a human coder.';
COMMENT ON COLUMN regard.film_representation.poster_faces_share_soft IS 'Σ P(category) / n over poster faces the model or a coder can speak for (the CLI''s share).';
COMMENT ON COLUMN regard.film_representation.poster_face_area_share_soft IS 'Σ P(category)·area / Σ area over the same faces.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_share_soft IS 'Σ P(category) / n over trailer persons the model or a coder can speak for.';
COMMENT ON COLUMN regard.film_representation.trailer_screen_time_share_soft IS 'Σ P(category)·screen time / Σ screen time over the same persons.';

-- The pooled views below share one method, spelled out once here:
-- for each share, a film f contributes S_f (Σ P, or Σ w·P), N_f (n, or Σ w) and V_f (Σ P(1−P),
-- or Σ w²·P(1−P)); the share is R = Σ S_f / Σ N_f and its 95% interval R ± 1.96·SE, clipped to
-- [0, 1], with SE² = (Σ V_f + n/(n−1) Σ (S_f − R·N_f)²) / (Σ N_f)² over the n films that have
-- items (regard.share_se). Limits: normal approximation (poor with few films or shares near
-- 0 or 1), films treated as a random sample, probabilities taken as calibrated, perceived and
-- not self-declared attributes.

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
    regard.share_ci_low(sum(fr.poster_soft_sum), sum(fr.poster_soft_n), sum(fr.poster_soft_var),
        sum(fr.poster_soft_sum ^ 2), sum(fr.poster_soft_sum * fr.poster_soft_n), sum(fr.poster_soft_n ^ 2),
        count(*) FILTER (WHERE fr.poster_soft_n > 0)) AS poster_faces_share_ci_low,
    regard.share_ci_high(sum(fr.poster_soft_sum), sum(fr.poster_soft_n), sum(fr.poster_soft_var),
        sum(fr.poster_soft_sum ^ 2), sum(fr.poster_soft_sum * fr.poster_soft_n), sum(fr.poster_soft_n ^ 2),
        count(*) FILTER (WHERE fr.poster_soft_n > 0)) AS poster_faces_share_ci_high,
    regard.share_ci_low(sum(fr.trailer_soft_sum), sum(fr.trailer_soft_n), sum(fr.trailer_soft_var),
        sum(fr.trailer_soft_sum ^ 2), sum(fr.trailer_soft_sum * fr.trailer_soft_n), sum(fr.trailer_soft_n ^ 2),
        count(*) FILTER (WHERE fr.trailer_soft_n > 0)) AS trailer_persons_share_ci_low,
    regard.share_ci_high(sum(fr.trailer_soft_sum), sum(fr.trailer_soft_n), sum(fr.trailer_soft_var),
        sum(fr.trailer_soft_sum ^ 2), sum(fr.trailer_soft_sum * fr.trailer_soft_n), sum(fr.trailer_soft_n ^ 2),
        count(*) FILTER (WHERE fr.trailer_soft_n > 0)) AS trailer_persons_share_ci_high,
    sum(fr.coded_persons)::bigint AS coded_persons,
    sum(fr.poster_soft_sum) / nullif(sum(fr.poster_soft_n), 0) AS poster_faces_share_soft,
    sum(fr.poster_area_soft_sum) / nullif(sum(fr.poster_area_soft_weight), 0) AS poster_face_area_share_soft,
    regard.share_ci_low(sum(fr.poster_area_soft_sum), sum(fr.poster_area_soft_weight), sum(fr.poster_area_soft_var),
        sum(fr.poster_area_soft_sum ^ 2), sum(fr.poster_area_soft_sum * fr.poster_area_soft_weight), sum(fr.poster_area_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.poster_area_soft_weight > 0)) AS poster_face_area_share_ci_low,
    regard.share_ci_high(sum(fr.poster_area_soft_sum), sum(fr.poster_area_soft_weight), sum(fr.poster_area_soft_var),
        sum(fr.poster_area_soft_sum ^ 2), sum(fr.poster_area_soft_sum * fr.poster_area_soft_weight), sum(fr.poster_area_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.poster_area_soft_weight > 0)) AS poster_face_area_share_ci_high,
    sum(fr.trailer_soft_sum) / nullif(sum(fr.trailer_soft_n), 0) AS trailer_persons_share_soft,
    sum(fr.trailer_time_soft_sum) / nullif(sum(fr.trailer_time_soft_weight), 0) AS trailer_screen_time_share_soft,
    regard.share_ci_low(sum(fr.trailer_time_soft_sum), sum(fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_var),
        sum(fr.trailer_time_soft_sum ^ 2), sum(fr.trailer_time_soft_sum * fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.trailer_time_soft_weight > 0)) AS trailer_screen_time_share_ci_low,
    regard.share_ci_high(sum(fr.trailer_time_soft_sum), sum(fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_var),
        sum(fr.trailer_time_soft_sum ^ 2), sum(fr.trailer_time_soft_sum * fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.trailer_time_soft_weight > 0)) AS trailer_screen_time_share_ci_high
FROM regard.film_selection sel
JOIN regard.festival_edition fe USING (festival_edition_id)
LEFT JOIN regard.festival_section fs USING (festival_section_id)
JOIN regard.film_representation fr USING (film_id)
GROUP BY fe.festival_edition_id, fe.festival, fe.edition, fs.festival_section_id, fs.section,
         fr.attribute, fr.category;

COMMENT ON VIEW regard.festival_section_representation IS
    'Per festival edition and section (NULL section: selected without a section), attribute and category, summed over the selected films. *_share: among decided labels; *_share_soft: Σ P / Σ n, the figure the 95% interval (*_ci_low/high) belongs to. The interval combines classification variance (Σ P(1−P)) and between-film variance of the ratio (n/(n−1) Σ (S_f − R N_f)²), normal approximation clipped to [0, 1] (regard.share_se). Unreliable with few films; perceived, not self-declared, gender.';

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
    regard.share_ci_low(sum(fr.poster_soft_sum), sum(fr.poster_soft_n), sum(fr.poster_soft_var),
        sum(fr.poster_soft_sum ^ 2), sum(fr.poster_soft_sum * fr.poster_soft_n), sum(fr.poster_soft_n ^ 2),
        count(*) FILTER (WHERE fr.poster_soft_n > 0)) AS poster_faces_share_ci_low,
    regard.share_ci_high(sum(fr.poster_soft_sum), sum(fr.poster_soft_n), sum(fr.poster_soft_var),
        sum(fr.poster_soft_sum ^ 2), sum(fr.poster_soft_sum * fr.poster_soft_n), sum(fr.poster_soft_n ^ 2),
        count(*) FILTER (WHERE fr.poster_soft_n > 0)) AS poster_faces_share_ci_high,
    regard.share_ci_low(sum(fr.trailer_soft_sum), sum(fr.trailer_soft_n), sum(fr.trailer_soft_var),
        sum(fr.trailer_soft_sum ^ 2), sum(fr.trailer_soft_sum * fr.trailer_soft_n), sum(fr.trailer_soft_n ^ 2),
        count(*) FILTER (WHERE fr.trailer_soft_n > 0)) AS trailer_persons_share_ci_low,
    regard.share_ci_high(sum(fr.trailer_soft_sum), sum(fr.trailer_soft_n), sum(fr.trailer_soft_var),
        sum(fr.trailer_soft_sum ^ 2), sum(fr.trailer_soft_sum * fr.trailer_soft_n), sum(fr.trailer_soft_n ^ 2),
        count(*) FILTER (WHERE fr.trailer_soft_n > 0)) AS trailer_persons_share_ci_high,
    sum(fr.coded_persons)::bigint AS coded_persons,
    sum(fr.poster_soft_sum) / nullif(sum(fr.poster_soft_n), 0) AS poster_faces_share_soft,
    sum(fr.poster_area_soft_sum) / nullif(sum(fr.poster_area_soft_weight), 0) AS poster_face_area_share_soft,
    regard.share_ci_low(sum(fr.poster_area_soft_sum), sum(fr.poster_area_soft_weight), sum(fr.poster_area_soft_var),
        sum(fr.poster_area_soft_sum ^ 2), sum(fr.poster_area_soft_sum * fr.poster_area_soft_weight), sum(fr.poster_area_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.poster_area_soft_weight > 0)) AS poster_face_area_share_ci_low,
    regard.share_ci_high(sum(fr.poster_area_soft_sum), sum(fr.poster_area_soft_weight), sum(fr.poster_area_soft_var),
        sum(fr.poster_area_soft_sum ^ 2), sum(fr.poster_area_soft_sum * fr.poster_area_soft_weight), sum(fr.poster_area_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.poster_area_soft_weight > 0)) AS poster_face_area_share_ci_high,
    sum(fr.trailer_soft_sum) / nullif(sum(fr.trailer_soft_n), 0) AS trailer_persons_share_soft,
    sum(fr.trailer_time_soft_sum) / nullif(sum(fr.trailer_time_soft_weight), 0) AS trailer_screen_time_share_soft,
    regard.share_ci_low(sum(fr.trailer_time_soft_sum), sum(fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_var),
        sum(fr.trailer_time_soft_sum ^ 2), sum(fr.trailer_time_soft_sum * fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.trailer_time_soft_weight > 0)) AS trailer_screen_time_share_ci_low,
    regard.share_ci_high(sum(fr.trailer_time_soft_sum), sum(fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_var),
        sum(fr.trailer_time_soft_sum ^ 2), sum(fr.trailer_time_soft_sum * fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.trailer_time_soft_weight > 0)) AS trailer_screen_time_share_ci_high
FROM (SELECT DISTINCT film_id, festival_edition_id FROM regard.film_selection) sel
JOIN regard.festival_edition fe USING (festival_edition_id)
JOIN regard.film_representation fr USING (film_id)
GROUP BY fe.festival_edition_id, fe.festival, fe.edition, fr.attribute, fr.category;

COMMENT ON VIEW regard.festival_edition_representation IS
    'Per festival edition (all sections, each film once), attribute and category. Same columns and interval method as regard.festival_section_representation.';

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
    regard.share_ci_low(sum(fr.poster_soft_sum), sum(fr.poster_soft_n), sum(fr.poster_soft_var),
        sum(fr.poster_soft_sum ^ 2), sum(fr.poster_soft_sum * fr.poster_soft_n), sum(fr.poster_soft_n ^ 2),
        count(*) FILTER (WHERE fr.poster_soft_n > 0)) AS poster_faces_share_ci_low,
    regard.share_ci_high(sum(fr.poster_soft_sum), sum(fr.poster_soft_n), sum(fr.poster_soft_var),
        sum(fr.poster_soft_sum ^ 2), sum(fr.poster_soft_sum * fr.poster_soft_n), sum(fr.poster_soft_n ^ 2),
        count(*) FILTER (WHERE fr.poster_soft_n > 0)) AS poster_faces_share_ci_high,
    regard.share_ci_low(sum(fr.trailer_soft_sum), sum(fr.trailer_soft_n), sum(fr.trailer_soft_var),
        sum(fr.trailer_soft_sum ^ 2), sum(fr.trailer_soft_sum * fr.trailer_soft_n), sum(fr.trailer_soft_n ^ 2),
        count(*) FILTER (WHERE fr.trailer_soft_n > 0)) AS trailer_persons_share_ci_low,
    regard.share_ci_high(sum(fr.trailer_soft_sum), sum(fr.trailer_soft_n), sum(fr.trailer_soft_var),
        sum(fr.trailer_soft_sum ^ 2), sum(fr.trailer_soft_sum * fr.trailer_soft_n), sum(fr.trailer_soft_n ^ 2),
        count(*) FILTER (WHERE fr.trailer_soft_n > 0)) AS trailer_persons_share_ci_high,
    sum(fr.coded_persons)::bigint AS coded_persons,
    sum(fr.poster_soft_sum) / nullif(sum(fr.poster_soft_n), 0) AS poster_faces_share_soft,
    sum(fr.poster_area_soft_sum) / nullif(sum(fr.poster_area_soft_weight), 0) AS poster_face_area_share_soft,
    regard.share_ci_low(sum(fr.poster_area_soft_sum), sum(fr.poster_area_soft_weight), sum(fr.poster_area_soft_var),
        sum(fr.poster_area_soft_sum ^ 2), sum(fr.poster_area_soft_sum * fr.poster_area_soft_weight), sum(fr.poster_area_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.poster_area_soft_weight > 0)) AS poster_face_area_share_ci_low,
    regard.share_ci_high(sum(fr.poster_area_soft_sum), sum(fr.poster_area_soft_weight), sum(fr.poster_area_soft_var),
        sum(fr.poster_area_soft_sum ^ 2), sum(fr.poster_area_soft_sum * fr.poster_area_soft_weight), sum(fr.poster_area_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.poster_area_soft_weight > 0)) AS poster_face_area_share_ci_high,
    sum(fr.trailer_soft_sum) / nullif(sum(fr.trailer_soft_n), 0) AS trailer_persons_share_soft,
    sum(fr.trailer_time_soft_sum) / nullif(sum(fr.trailer_time_soft_weight), 0) AS trailer_screen_time_share_soft,
    regard.share_ci_low(sum(fr.trailer_time_soft_sum), sum(fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_var),
        sum(fr.trailer_time_soft_sum ^ 2), sum(fr.trailer_time_soft_sum * fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.trailer_time_soft_weight > 0)) AS trailer_screen_time_share_ci_low,
    regard.share_ci_high(sum(fr.trailer_time_soft_sum), sum(fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_var),
        sum(fr.trailer_time_soft_sum ^ 2), sum(fr.trailer_time_soft_sum * fr.trailer_time_soft_weight), sum(fr.trailer_time_soft_weight ^ 2),
        count(*) FILTER (WHERE fr.trailer_time_soft_weight > 0)) AS trailer_screen_time_share_ci_high
FROM regard.film_representation fr
GROUP BY fr.film_year, fr.attribute, fr.category;

COMMENT ON VIEW regard.year_representation IS
    'Per film year (NULL: year not given), attribute and category. Same columns and interval method as regard.festival_section_representation.';
