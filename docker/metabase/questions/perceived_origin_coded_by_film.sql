-- Perceived origin as coded by the association's coders (labels from regard.coding_scheme),
-- per film and category, with how many persons are coded and how many remain unknown.
SELECT
    film_title,
    category AS perceived_origin,
    poster_faces,
    poster_faces_unknown,
    trailer_persons,
    trailer_persons_unknown,
    coded_persons
FROM regard.film_representation
WHERE attribute = 'origin'
ORDER BY film_title, category;
