-- Coding progress of one attribute (e.g. origin) in a festival, per edition and section: poster
-- faces and trailer persons, how many a coder labelled, and how many are still unknown.
-- Variables: festival (Text, required), attribute (Text, required), edition (Number).
SELECT
    edition,
    section,
    films,
    poster_faces_decided + poster_faces_unknown AS poster_faces,
    trailer_persons_decided + trailer_persons_unknown AS trailer_persons,
    coded_persons,
    coded_persons::double precision
        / nullif(poster_faces_decided + poster_faces_unknown
                 + trailer_persons_decided + trailer_persons_unknown, 0) AS coded_share,
    poster_faces_unknown + trailer_persons_unknown AS still_unknown
FROM regard.festival_section_representation
WHERE festival = {{festival}}
  AND attribute = {{attribute}}
  AND category = 'unknown'
  [[AND edition = {{edition}}]]
ORDER BY edition DESC, section;
