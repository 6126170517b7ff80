-- Share of women among the distinct persons of trailers and of their screen time, per film
-- year, with denominators and unknowns.
SELECT
    film_year,
    films,
    trailers,
    trailer_persons AS women,
    trailer_persons_decided AS persons_decided,
    trailer_persons_unknown AS persons_unknown,
    trailer_persons_share AS women_share,
    trailer_person_seconds AS women_person_seconds,
    trailer_person_seconds_decided AS person_seconds_decided,
    trailer_person_seconds_unknown AS person_seconds_unknown,
    trailer_screen_time_share AS women_screen_time_share
FROM regard.year_representation
WHERE attribute = 'gender' AND category = 'female' AND trailers > 0
ORDER BY film_year;
