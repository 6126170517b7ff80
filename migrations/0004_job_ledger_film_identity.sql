-- The job ledger (one row per job id ever received, from the queue or the CLI) and film
-- identity (ids that arrive later attach to the film already known; titles keep aliases).

CREATE TABLE regard.job (
    job_id          text PRIMARY KEY,
    origin          text NOT NULL CHECK (origin IN ('queue', 'cli')),
    source          text,
    kind            text CHECK (kind IN ('poster', 'trailer')),
    film            jsonb,
    festival        jsonb,
    status          text NOT NULL CHECK (status IN
                        ('queued', 'running', 'retrying', 'succeeded', 'failed', 'dead_lettered')),
    attempts        integer NOT NULL DEFAULT 0,
    received_at     timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    next_attempt_at timestamptz,
    error_code      text,
    error_message   text,
    analysis_id     bigint REFERENCES regard.analysis (analysis_id) ON DELETE SET NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_status_received_idx ON regard.job (status, received_at);
CREATE INDEX job_received_idx ON regard.job (received_at);
CREATE INDEX job_analysis_idx ON regard.job (analysis_id);

COMMENT ON TABLE regard.job IS
    'One row per job id ever received (queue or CLI), whatever became of it. Duplicate jobs of the same content have their own rows and share the analysis they resolved to.';
COMMENT ON COLUMN regard.job.job_id IS 'The job id the scraper gave (or one generated for a malformed message without one, or for a CLI input).';
COMMENT ON COLUMN regard.job.origin IS 'queue: a RabbitMQ job; cli: an input of regard analyze --db.';
COMMENT ON COLUMN regard.job.source IS 'The media source as the job gave it (path or URL); NULL when the message could not be read.';
COMMENT ON COLUMN regard.job.kind IS 'The kind the job claimed (poster or trailer); the kind of the media itself is in media.kind.';
COMMENT ON COLUMN regard.job.film IS 'The film identity the job gave (title, year, IMDb, TMDb, other ids), as JSON.';
COMMENT ON COLUMN regard.job.festival IS 'The festival selection the job gave (festival, edition, section), as JSON.';
COMMENT ON COLUMN regard.job.status IS 'queued (handed back at a shutdown), running, retrying (a transient failure; see next_attempt_at), succeeded, failed (CLI), dead_lettered (failed for good; the message is in the dead-letter queue).';
COMMENT ON COLUMN regard.job.attempts IS 'Times the job was started (redeliveries and retries included).';
COMMENT ON COLUMN regard.job.received_at IS 'When a worker (or the CLI) first received the job id.';
COMMENT ON COLUMN regard.job.started_at IS 'When the latest attempt started.';
COMMENT ON COLUMN regard.job.finished_at IS 'When the job reached succeeded, failed or dead_lettered.';
COMMENT ON COLUMN regard.job.next_attempt_at IS 'While retrying: when the next attempt is due.';
COMMENT ON COLUMN regard.job.error_code IS 'Stable code of the latest failure (e.g. kind_mismatch, fetch_timeout).';
COMMENT ON COLUMN regard.job.error_message IS 'Message of the latest failure.';
COMMENT ON COLUMN regard.job.analysis_id IS 'The analysis the job resolved to: the succeeded one (shared by duplicates of the same content) or the recorded failure.';
COMMENT ON COLUMN regard.job.updated_at IS 'Last change of this row.';

-- Film identity: the normalised title and year (the weakest identity), how strong the id was
-- that gave the current title, and the other titles seen.
ALTER TABLE regard.film
    ADD COLUMN title_key text,
    ADD COLUMN title_strength smallint NOT NULL DEFAULT 0,
    ADD COLUMN aliases jsonb NOT NULL DEFAULT '[]'::jsonb;
UPDATE regard.film SET
    title_key = lower(regexp_replace(btrim(title), '\s+', ' ', 'g')) || '|' || coalesce(year::text, ''),
    title_strength = CASE WHEN imdb_id IS NOT NULL THEN 3 WHEN tmdb_id IS NOT NULL THEN 2
                          WHEN external_ids <> '{}'::jsonb THEN 1 ELSE 0 END;
CREATE INDEX film_title_key_idx ON regard.film (title_key);
COMMENT ON COLUMN regard.film.title_key IS 'Normalised title (case and spacing folded) and year: the identity of a film known by title only.';
COMMENT ON COLUMN regard.film.title_strength IS 'Strength of the identity that gave the current title: 3 IMDb, 2 TMDb, 1 another external id, 0 title only. A title given with a stronger id replaces it; the others become aliases.';
COMMENT ON COLUMN regard.film.aliases IS 'Other titles this film was given by jobs, as a JSON array.';

-- Failed jobs for the quality checks, with whether a later success resolved them.
CREATE VIEW regard.quality_failed_jobs AS
SELECT
    j.job_id,
    j.origin,
    j.source,
    j.kind,
    j.status,
    j.error_code,
    j.error_message,
    j.attempts,
    j.film ->> 'title' AS film_title,
    j.festival ->> 'festival' AS festival,
    j.received_at,
    j.finished_at,
    EXISTS (
        SELECT 1
        FROM regard.analysis f
        JOIN regard.analysis s ON s.media_id = f.media_id AND s.status = 'succeeded'
        WHERE f.analysis_id = j.analysis_id
    ) OR EXISTS (
        SELECT 1 FROM regard.job later
        WHERE later.source = j.source AND later.status = 'succeeded'
          AND later.received_at >= j.received_at AND later.job_id <> j.job_id
    ) AS resolved
FROM regard.job j
WHERE j.status IN ('failed', 'dead_lettered');

COMMENT ON VIEW regard.quality_failed_jobs IS
    'Jobs that failed (CLI) or were dead-lettered (queue), from the job ledger; resolved is true once the same media (or the same source, by a later job) succeeded.';
COMMENT ON COLUMN regard.quality_failed_jobs.job_id IS 'The job id.';
COMMENT ON COLUMN regard.quality_failed_jobs.origin IS 'queue or cli.';
COMMENT ON COLUMN regard.quality_failed_jobs.source IS 'The media source the job gave.';
COMMENT ON COLUMN regard.quality_failed_jobs.kind IS 'The kind the job claimed.';
COMMENT ON COLUMN regard.quality_failed_jobs.status IS 'failed or dead_lettered.';
COMMENT ON COLUMN regard.quality_failed_jobs.error_code IS 'Stable error code.';
COMMENT ON COLUMN regard.quality_failed_jobs.error_message IS 'Error message.';
COMMENT ON COLUMN regard.quality_failed_jobs.attempts IS 'Times the job was started.';
COMMENT ON COLUMN regard.quality_failed_jobs.film_title IS 'Film title the job gave.';
COMMENT ON COLUMN regard.quality_failed_jobs.festival IS 'Festival the job gave.';
COMMENT ON COLUMN regard.quality_failed_jobs.received_at IS 'When the job was first received.';
COMMENT ON COLUMN regard.quality_failed_jobs.finished_at IS 'When it failed for good.';
COMMENT ON COLUMN regard.quality_failed_jobs.resolved IS 'True when a success for the same media or source came since: nothing left to fix.';
