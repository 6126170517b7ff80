-- Analyses that failed and have not succeeded since, most recent first.
-- Variables: error_code (Text).
SELECT recorded_at, error_code, error_message, attempts, media_kind, source, film_title
FROM regard.quality_failed_analyses
[[WHERE error_code = {{error_code}}]]
ORDER BY recorded_at DESC;
