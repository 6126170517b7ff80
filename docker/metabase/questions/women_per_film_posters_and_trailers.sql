-- Per film: women on the posters and in the trailers, side by side.
SELECT
    film_title,
    film_year,
    poster_faces AS poster_women,
    poster_faces_decided AS poster_faces_decided,
    poster_faces_unknown AS poster_faces_unknown,
    poster_faces_share AS poster_women_share,
    trailer_persons AS trailer_women,
    trailer_persons_decided AS trailer_persons_decided,
    trailer_persons_unknown AS trailer_persons_unknown,
    trailer_persons_share AS trailer_women_share,
    trailer_screen_time_share AS trailer_women_screen_time_share
FROM regard.film_representation
WHERE attribute = 'gender' AND category = 'female'
ORDER BY film_title;
