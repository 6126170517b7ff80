-- Share of women among the faces on the posters of the Cannes 2026 competition, with the
-- decided faces (denominator), the unknown faces, and the share of face area.
SELECT
    films,
    posters,
    poster_faces AS women_faces,
    poster_faces_decided AS faces_decided,
    poster_faces_unknown AS faces_unknown,
    poster_faces_share AS women_share,
    poster_face_area_share AS women_face_area_share,
    poster_face_area_unknown_px AS unknown_face_area_px
FROM regard.festival_section_representation
WHERE festival = 'Festival de Cannes'
  AND edition = 2026
  AND section = 'Compétition'
  AND attribute = 'gender'
  AND category = 'female';
