-- Share of women on the posters and in the trailers per film year: persons, screen time and
-- faces, each share with its 95% interval and the unknown count beside it (see
-- women_share_by_section.sql for what each column means).
-- Variables: from_year (Number), to_year (Number).
SELECT
    film_year,
    films,
    posters,
    poster_faces AS poster_women,
    poster_faces_unknown AS poster_faces_unknown,
    poster_faces_share_soft AS poster_women_share,
    poster_faces_share_ci_low AS poster_women_share_ci_low,
    poster_faces_share_ci_high AS poster_women_share_ci_high,
    trailers,
    trailer_persons AS women,
    trailer_persons_decided AS persons_decided,
    trailer_persons_unknown AS persons_unknown,
    trailer_persons_share_soft AS women_share,
    trailer_persons_share_ci_low AS women_share_ci_low,
    trailer_persons_share_ci_high AS women_share_ci_high,
    trailer_persons_share AS women_decided_share,
    trailer_person_seconds AS women_person_seconds,
    trailer_person_seconds_decided AS person_seconds_decided,
    trailer_person_seconds_unknown AS person_seconds_unknown,
    trailer_screen_time_share_soft AS women_screen_time_share,
    trailer_screen_time_share_ci_low AS women_screen_time_share_ci_low,
    trailer_screen_time_share_ci_high AS women_screen_time_share_ci_high,
    trailer_screen_time_share AS women_decided_screen_time_share
FROM regard.year_representation
WHERE attribute = 'gender'
  AND category = 'female'
  [[AND film_year >= {{from_year}}]]
  [[AND film_year <= {{to_year}}]]
ORDER BY film_year;
