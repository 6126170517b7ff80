-- Apparent age bands on the posters and in the trailers of a festival, per edition and
-- section, with the unknown count beside each share. Age bands have no probabilities, so the
-- shares are among decided labels and their *_ci_* columns stay NULL. age_band_label: French
-- label of the band (regard.category_label.label_en for English).
-- Variables: festival (Text, required), edition (Number), section (Text).
SELECT
    edition,
    section,
    r.category AS age_band,
    coalesce(l.label, r.category) AS age_band_label,
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
FROM regard.festival_section_representation r
LEFT JOIN regard.category_label l USING (attribute, category)
WHERE festival = {{festival}}
  [[AND edition = {{edition}}]]
  [[AND section = {{section}}]]
  AND r.attribute = 'age_band'
ORDER BY edition DESC, section, r.category = 'unknown', r.category;
