-- Apparent age bands on the posters and in the trailers of a festival, per edition and
-- section, with the unknown count beside each share. Age bands have no probabilities, so the
-- shares are among decided labels and their *_ci_* columns stay NULL.
-- Variables: festival (Text, required), edition (Number), section (Text).
SELECT
    edition,
    section,
    category AS age_band,
    poster_faces,
    poster_faces_decided,
    poster_faces_unknown,
    poster_faces_share,
    poster_faces_share_ci_low,
    poster_faces_share_ci_high,
    trailer_persons,
    trailer_persons_decided,
    trailer_persons_unknown,
    trailer_persons_share,
    trailer_person_seconds,
    trailer_person_seconds_unknown,
    trailer_screen_time_share
FROM regard.festival_section_representation
WHERE festival = {{festival}}
  [[AND edition = {{edition}}]]
  [[AND section = {{section}}]]
  AND attribute = 'age_band'
ORDER BY edition DESC, section, category = 'unknown', category;
