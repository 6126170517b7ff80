-- Perceived origin as coded by the association's coders (labels from regard.coding_scheme),
-- per film and category: counts, the share with its 95% interval, how many persons are coded
-- and how many remain unknown. origin_label: the category's French label (label_en: English).
-- Variables: year (Number), film (Text).
SELECT
    film_title,
    fr.category AS perceived_origin,
    coalesce(l.label, fr.category) AS origin_label,
    poster_faces,
    poster_faces_unknown,
    poster_faces_share_soft AS poster_share,
    poster_faces_share_ci_low AS poster_share_ci_low,
    poster_faces_share_ci_high AS poster_share_ci_high,
    trailer_persons,
    trailer_persons_unknown,
    trailer_persons_share_soft AS trailer_share,
    trailer_persons_share_ci_low AS trailer_share_ci_low,
    trailer_persons_share_ci_high AS trailer_share_ci_high,
    coded_persons
FROM regard.film_representation fr
LEFT JOIN regard.category_label l USING (attribute, category)
WHERE fr.attribute = 'origin'
  [[AND film_year = {{year}}]]
  [[AND film_title = {{film}}]]
ORDER BY film_title, fr.category;
