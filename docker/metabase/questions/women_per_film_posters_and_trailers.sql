-- Per film: women on the posters and in the trailers side by side, each share with its 95%
-- interval and the unknown count beside it. The interval of one poster or trailer is exact;
-- over several, a normal approximation from classification variance.
-- Variables: year (Number), film (Text).
SELECT
    film_title,
    film_year,
    posters,
    poster_faces AS poster_women,
    poster_faces_decided,
    poster_faces_unknown,
    poster_faces_share_soft AS poster_women_share,
    poster_faces_share_ci_low AS poster_women_share_ci_low,
    poster_faces_share_ci_high AS poster_women_share_ci_high,
    poster_faces_share AS poster_women_decided_share,
    trailers,
    trailer_persons AS trailer_women,
    trailer_persons_decided,
    trailer_persons_unknown,
    trailer_persons_share_soft AS trailer_women_share,
    trailer_persons_share_ci_low AS trailer_women_share_ci_low,
    trailer_persons_share_ci_high AS trailer_women_share_ci_high,
    trailer_persons_share AS trailer_women_decided_share,
    trailer_person_seconds_unknown,
    trailer_screen_time_share_soft AS trailer_women_screen_time_share,
    trailer_screen_time_share_ci_low AS trailer_women_screen_time_share_ci_low,
    trailer_screen_time_share_ci_high AS trailer_women_screen_time_share_ci_high
FROM regard.film_representation
WHERE attribute = 'gender'
  AND category = 'female'
  [[AND film_year = {{year}}]]
  [[AND film_title = {{film}}]]
ORDER BY film_title;
