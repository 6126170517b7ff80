-- Share of women on the posters and in the trailers of a festival, per edition and section.
-- women_share and its ci_low/ci_high: the share the 95% interval belongs to (Σ P / n over the
-- faces the model or a coder can speak for); *_unknown: faces or persons without a decided label
-- (those too small are left out of every share); *_decided_share: among decided labels only.
-- Variables: festival (Text, required), edition (Number), section (Text).
SELECT
    festival,
    edition,
    section,
    films,
    posters,
    poster_faces AS women_faces,
    poster_faces_decided AS faces_decided,
    poster_faces_unknown AS faces_unknown,
    poster_faces_share_soft AS women_share,
    poster_faces_share_ci_low AS women_share_ci_low,
    poster_faces_share_ci_high AS women_share_ci_high,
    poster_faces_share AS women_decided_share,
    poster_face_area_share_soft AS women_face_area_share,
    poster_face_area_share_ci_low AS women_face_area_share_ci_low,
    poster_face_area_share_ci_high AS women_face_area_share_ci_high,
    poster_face_area_unknown_px AS unknown_face_area_px,
    trailers,
    trailer_persons AS trailer_women,
    trailer_persons_decided,
    trailer_persons_unknown,
    trailer_persons_share_soft AS trailer_women_share,
    trailer_persons_share_ci_low AS trailer_women_share_ci_low,
    trailer_persons_share_ci_high AS trailer_women_share_ci_high,
    trailer_person_seconds AS trailer_women_person_seconds,
    trailer_person_seconds_unknown,
    trailer_screen_time_share_soft AS trailer_women_screen_time_share,
    trailer_screen_time_share_ci_low AS trailer_women_screen_time_share_ci_low,
    trailer_screen_time_share_ci_high AS trailer_women_screen_time_share_ci_high
FROM regard.festival_section_representation
WHERE festival = {{festival}}
  [[AND edition = {{edition}}]]
  [[AND section = {{section}}]]
  AND attribute = 'gender'
  AND category = 'female'
ORDER BY edition DESC, section;
