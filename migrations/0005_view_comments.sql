-- Figures an analyst can publish: a COMMENT on every column of every analyst view (Metabase
-- shows them as descriptions), the read-only role Metabase connects as, and French and English
-- labels for attributes and categories.
-- Columns 0002-0004 already described keep their comment; the rest are described here. A test
-- (tests/store.rs) fails when a view column lacks one: a new view column needs its COMMENT in
-- the migration that creates it.

-- regard.latest_analysis
COMMENT ON COLUMN regard.latest_analysis.analysis_id IS 'Id of the analysis (regard.analysis).';
COMMENT ON COLUMN regard.latest_analysis.media_id IS 'Id of the media file (regard.media).';
COMMENT ON COLUMN regard.latest_analysis.content_sha256 IS 'SHA-256 of the file''s content: the media''s identity, whatever its URL.';
COMMENT ON COLUMN regard.latest_analysis.media_kind IS 'poster or trailer: the kind of the media itself.';
COMMENT ON COLUMN regard.latest_analysis.source IS 'Path or URL the file was read from.';
COMMENT ON COLUMN regard.latest_analysis.pipeline_version IS 'regard version that produced the analysis.';
COMMENT ON COLUMN regard.latest_analysis.model_set_sha256 IS 'SHA-256 of the model set; a new model set gives a new analysis.';
COMMENT ON COLUMN regard.latest_analysis.settings_sha256 IS 'SHA-256 of the analysis settings (thresholds, sampling rate).';
COMMENT ON COLUMN regard.latest_analysis.partial IS 'True when only part of the file could be decoded (see regard.analysis.decode_report): the figures cover the decoded part.';
COMMENT ON COLUMN regard.latest_analysis.recorded_at IS 'When the analysis was recorded.';

-- regard.latest_representation
COMMENT ON COLUMN regard.latest_representation.analysis_id IS 'Id of the analysis (regard.analysis).';
COMMENT ON COLUMN regard.latest_representation.media_id IS 'Id of the media file (regard.media).';
COMMENT ON COLUMN regard.latest_representation.media_kind IS 'poster or trailer: the kind of the media itself.';
COMMENT ON COLUMN regard.latest_representation.attribute IS 'What is measured: gender (perceived), age_band (apparent age, bands 0-17, 18-29, 30-44, 45-59, 60+ by default) or origin (perceived; only from coders or a configured model). Always filter on one attribute.';
COMMENT ON COLUMN regard.latest_representation.category IS 'A category of the attribute (female, male; an age band; a coding_scheme label), or unknown: the row counting faces/persons without a decided label, whose shares are NULL.';
COMMENT ON COLUMN regard.latest_representation.label_source IS 'model, or coder once a coder labelled a face/person of this analysis for this attribute (the row is then recomputed).';
COMMENT ON COLUMN regard.latest_representation.coded_persons IS 'Faces/persons of this analysis whose label for this attribute comes from a coder; same on every category row.';
COMMENT ON COLUMN regard.latest_representation.total_faces IS 'Poster: faces detected (all categories). NULL for a trailer.';
COMMENT ON COLUMN regard.latest_representation.unknown_faces IS 'Poster: faces whose label is unknown (too small, too uncertain, not coded).';
COMMENT ON COLUMN regard.latest_representation.faces IS 'Poster: faces of this category.';
COMMENT ON COLUMN regard.latest_representation.face_area_px IS 'Poster: face area of this category (px²).';
COMMENT ON COLUMN regard.latest_representation.decided_face_area_px IS 'Poster: face area with a decided label (px², every decided category).';
COMMENT ON COLUMN regard.latest_representation.unknown_face_area_px IS 'Poster: face area whose label is unknown (px²).';
COMMENT ON COLUMN regard.latest_representation.faces_share_ci_low IS '95% interval of this poster''s soft share of faces, lower bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.face_area_share_ci_low IS '95% interval of this poster''s soft share of face area, lower bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.faces_share_ci_high IS '95% interval of this poster''s soft share of faces, upper bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.face_area_share_ci_high IS '95% interval of this poster''s soft share of face area, upper bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.total_persons IS 'Trailer: distinct persons (all categories). NULL for a poster.';
COMMENT ON COLUMN regard.latest_representation.unknown_persons IS 'Trailer: persons whose label is unknown.';
COMMENT ON COLUMN regard.latest_representation.persons IS 'Trailer: distinct persons of this category.';
COMMENT ON COLUMN regard.latest_representation.person_seconds IS 'Trailer: screen time of this category''s persons, person-seconds (s; two persons for 1 s count 2 s).';
COMMENT ON COLUMN regard.latest_representation.decided_person_seconds IS 'Trailer: person-seconds with a decided label (every decided category).';
COMMENT ON COLUMN regard.latest_representation.unknown_person_seconds IS 'Trailer: person-seconds whose label is unknown.';
COMMENT ON COLUMN regard.latest_representation.screen_time_s IS 'Trailer: seconds during which at least one person of this category is on screen.';
COMMENT ON COLUMN regard.latest_representation.persons_share_ci_low IS '95% interval of this trailer''s soft share of persons, lower bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.screen_time_share_ci_low IS '95% interval of this trailer''s soft share of screen time, lower bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.persons_share_ci_high IS '95% interval of this trailer''s soft share of persons, upper bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.screen_time_share_ci_high IS '95% interval of this trailer''s soft share of screen time, upper bound (0-1): exact (Poisson-binomial) or Monte Carlo, from stats::interval. NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.soft_n IS 'Faces/persons the soft share is over (coder-decided, or with probabilities and big enough); NULL on the unknown row.';
COMMENT ON COLUMN regard.latest_representation.soft_sum IS 'Σ P(category) over those items (coder labels count 1 or 0).';
COMMENT ON COLUMN regard.latest_representation.soft_var IS 'Σ P(1-P) over those items: variance of the count from classification.';
COMMENT ON COLUMN regard.latest_representation.soft_weight IS 'Σ w over those items; w = face area in px² (posters) or screen time in s (trailers).';
COMMENT ON COLUMN regard.latest_representation.soft_weighted_sum IS 'Σ w·P(category) over those items.';
COMMENT ON COLUMN regard.latest_representation.soft_weighted_var IS 'Σ w²·P(1-P) over those items.';

-- regard.film_representation
COMMENT ON COLUMN regard.film_representation.film_id IS 'Id of the film (regard.film).';
COMMENT ON COLUMN regard.film_representation.film_title IS 'Film title: the one given with the strongest id (IMDb, then TMDb, then another id, then title only); other titles are in regard.film.aliases.';
COMMENT ON COLUMN regard.film_representation.film_year IS 'Film year as the jobs gave it; NULL when not given.';
COMMENT ON COLUMN regard.film_representation.imdb_id IS 'IMDb id (tt...), when known.';
COMMENT ON COLUMN regard.film_representation.tmdb_id IS 'TMDb id, when known.';
COMMENT ON COLUMN regard.film_representation.attribute IS 'What is measured: gender (perceived), age_band (apparent age, bands 0-17, 18-29, 30-44, 45-59, 60+ by default) or origin (perceived; only from coders or a configured model). Always filter on one attribute.';
COMMENT ON COLUMN regard.film_representation.category IS 'A category of the attribute (female, male; an age band; a coding_scheme label), or unknown: the row counting faces/persons without a decided label, whose shares are NULL.';
COMMENT ON COLUMN regard.film_representation.trailers IS 'Trailers of the film with a succeeded analysis.';
COMMENT ON COLUMN regard.film_representation.poster_face_area_share_ci_high IS '95% interval of poster_face_area_share_soft, upper bound (0-1): the exact interval stored with the analysis when the film has one poster, else a normal approximation from classification variance. NULL on the unknown row.';
COMMENT ON COLUMN regard.film_representation.trailer_persons_share_ci_high IS '95% interval of trailer_persons_share_soft, upper bound (0-1): the exact interval stored with the analysis when the film has one trailer, else a normal approximation from classification variance. NULL on the unknown row.';
COMMENT ON COLUMN regard.film_representation.trailer_screen_time_share_ci_high IS '95% interval of trailer_screen_time_share_soft, upper bound (0-1): the exact interval stored with the analysis when the film has one trailer, else a normal approximation from classification variance. NULL on the unknown row.';
COMMENT ON COLUMN regard.film_representation.poster_soft_n IS 'Poster faces poster_faces_share_soft is over (its n); NULL on the unknown row.';
COMMENT ON COLUMN regard.film_representation.poster_soft_sum IS 'Σ P(category) over those faces: numerator of poster_faces_share_soft.';
COMMENT ON COLUMN regard.film_representation.poster_soft_var IS 'Σ P(1-P) over those faces: classification variance of poster_soft_sum (faces²).';
COMMENT ON COLUMN regard.film_representation.poster_area_soft_weight IS 'Σ face area (px²) over those faces: denominator of poster_face_area_share_soft.';
COMMENT ON COLUMN regard.film_representation.poster_area_soft_sum IS 'Σ area·P(category) (px²): numerator of poster_face_area_share_soft.';
COMMENT ON COLUMN regard.film_representation.poster_area_soft_var IS 'Σ area²·P(1-P) (px⁴): classification variance of poster_area_soft_sum.';
COMMENT ON COLUMN regard.film_representation.trailer_soft_n IS 'Trailer persons trailer_persons_share_soft is over (its n); NULL on the unknown row.';
COMMENT ON COLUMN regard.film_representation.trailer_soft_sum IS 'Σ P(category) over those persons: numerator of trailer_persons_share_soft.';
COMMENT ON COLUMN regard.film_representation.trailer_soft_var IS 'Σ P(1-P) over those persons: classification variance of trailer_soft_sum.';
COMMENT ON COLUMN regard.film_representation.trailer_time_soft_weight IS 'Σ screen time (s) over those persons: denominator of trailer_screen_time_share_soft.';
COMMENT ON COLUMN regard.film_representation.trailer_time_soft_sum IS 'Σ screen time·P(category) (s): numerator of trailer_screen_time_share_soft.';
COMMENT ON COLUMN regard.film_representation.trailer_time_soft_var IS 'Σ screen time²·P(1-P) (s²): classification variance of trailer_time_soft_sum.';

-- regard.festival_section_representation
COMMENT ON COLUMN regard.festival_section_representation.festival IS 'Festival name as the jobs gave it (e.g. Festival de Cannes).';
COMMENT ON COLUMN regard.festival_section_representation.edition IS 'Edition (year) of the festival.';
COMMENT ON COLUMN regard.festival_section_representation.section IS 'Section of the selection (e.g. Compétition); NULL: films selected without a section.';
COMMENT ON COLUMN regard.festival_section_representation.attribute IS 'What is measured: gender (perceived), age_band (apparent age, bands 0-17, 18-29, 30-44, 45-59, 60+ by default) or origin (perceived; only from coders or a configured model). Always filter on one attribute.';
COMMENT ON COLUMN regard.festival_section_representation.category IS 'A category of the attribute (female, male; an age band; a coding_scheme label), or unknown: the row counting faces/persons without a decided label, whose shares are NULL.';
COMMENT ON COLUMN regard.festival_section_representation.films IS 'Films of the group with at least one analysed poster or trailer; each film counts once.';
COMMENT ON COLUMN regard.festival_section_representation.posters IS 'Posters with a succeeded analysis, summed over the films.';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces IS 'Faces of this category on those posters (count).';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces_decided IS 'Faces with a decided label (any category but unknown): denominator of poster_faces_share.';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces_unknown IS 'Faces whose label is unknown (too small, too uncertain, or not coded): left out of poster_faces_share. Same on every category row.';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces_share IS 'poster_faces / poster_faces_decided (0-1): share among decided labels only. NULL on the unknown row or without decided faces. Its interval is the one of poster_faces_share_soft.';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_px IS 'Face area of this category on the posters, in square pixels (box width x height).';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_decided_px IS 'Face area (px²) with a decided label: denominator of poster_face_area_share.';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_unknown_px IS 'Face area (px²) whose label is unknown: left out of poster_face_area_share.';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_share IS 'poster_face_area_px / poster_face_area_decided_px (0-1): share of the decided face area. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_section_representation.trailers IS 'Trailers with a succeeded analysis, summed over the films.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons IS 'Distinct persons of this category in those trailers, summed over trailers (a person in two trailers counts twice).';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons_decided IS 'Persons with a decided label: denominator of trailer_persons_share.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons_unknown IS 'Persons whose label is unknown (too small, too uncertain, or not coded): left out of trailer_persons_share. Same on every category row.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons_share IS 'trailer_persons / trailer_persons_decided (0-1): share among decided labels only. NULL on the unknown row. Its interval is the one of trailer_persons_share_soft.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_person_seconds IS 'Screen time of this category in person-seconds (s; two persons on screen for 1 s count 2 s).';
COMMENT ON COLUMN regard.festival_section_representation.trailer_person_seconds_decided IS 'Person-seconds with a decided label: denominator of trailer_screen_time_share.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_person_seconds_unknown IS 'Person-seconds whose label is unknown: left out of trailer_screen_time_share.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_screen_time_share IS 'trailer_person_seconds / trailer_person_seconds_decided (0-1): share of decided screen time. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces_share_ci_low IS '95% interval of poster_faces_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces_share_ci_high IS '95% interval of poster_faces_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons_share_ci_low IS '95% interval of trailer_persons_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons_share_ci_high IS '95% interval of trailer_persons_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.coded_persons IS 'Faces and persons (all categories) whose label for this attribute comes from a human coder; same on every category row. Coding progress: coded_persons / (poster_faces_decided + poster_faces_unknown + trailer_persons_decided + trailer_persons_unknown).';
COMMENT ON COLUMN regard.festival_section_representation.poster_faces_share_soft IS 'Σ P(category) / n over the poster faces the model or a coder can speak for (big enough, with probabilities; a coder''s label counts 1 or 0), 0-1: the share poster_faces_share_ci_low/high belong to, and the one the CLI reports. Faces too small to decide are left out (they are in poster_faces_unknown). NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_share_soft IS 'Σ P(category)·area / Σ area over the same faces (0-1): the share poster_face_area_share_ci_low/high belong to. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_share_ci_low IS '95% interval of poster_face_area_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.poster_face_area_share_ci_high IS '95% interval of poster_face_area_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_persons_share_soft IS 'Σ P(category) / n over the trailer persons the model or a coder can speak for (0-1): the share trailer_persons_share_ci_low/high belong to. Persons too small to decide are left out (they are in trailer_persons_unknown). NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_screen_time_share_soft IS 'Σ P(category)·screen time / Σ screen time over the same persons (0-1): the share trailer_screen_time_share_ci_low/high belong to. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_screen_time_share_ci_low IS '95% interval of trailer_screen_time_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_section_representation.trailer_screen_time_share_ci_high IS '95% interval of trailer_screen_time_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';

-- regard.festival_edition_representation
COMMENT ON COLUMN regard.festival_edition_representation.festival IS 'Festival name as the jobs gave it (e.g. Festival de Cannes).';
COMMENT ON COLUMN regard.festival_edition_representation.edition IS 'Edition (year) of the festival.';
COMMENT ON COLUMN regard.festival_edition_representation.attribute IS 'What is measured: gender (perceived), age_band (apparent age, bands 0-17, 18-29, 30-44, 45-59, 60+ by default) or origin (perceived; only from coders or a configured model). Always filter on one attribute.';
COMMENT ON COLUMN regard.festival_edition_representation.category IS 'A category of the attribute (female, male; an age band; a coding_scheme label), or unknown: the row counting faces/persons without a decided label, whose shares are NULL.';
COMMENT ON COLUMN regard.festival_edition_representation.films IS 'Films of the group with at least one analysed poster or trailer; each film counts once.';
COMMENT ON COLUMN regard.festival_edition_representation.posters IS 'Posters with a succeeded analysis, summed over the films.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces IS 'Faces of this category on those posters (count).';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces_decided IS 'Faces with a decided label (any category but unknown): denominator of poster_faces_share.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces_unknown IS 'Faces whose label is unknown (too small, too uncertain, or not coded): left out of poster_faces_share. Same on every category row.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces_share IS 'poster_faces / poster_faces_decided (0-1): share among decided labels only. NULL on the unknown row or without decided faces. Its interval is the one of poster_faces_share_soft.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_px IS 'Face area of this category on the posters, in square pixels (box width x height).';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_decided_px IS 'Face area (px²) with a decided label: denominator of poster_face_area_share.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_unknown_px IS 'Face area (px²) whose label is unknown: left out of poster_face_area_share.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_share IS 'poster_face_area_px / poster_face_area_decided_px (0-1): share of the decided face area. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_edition_representation.trailers IS 'Trailers with a succeeded analysis, summed over the films.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons IS 'Distinct persons of this category in those trailers, summed over trailers (a person in two trailers counts twice).';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons_decided IS 'Persons with a decided label: denominator of trailer_persons_share.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons_unknown IS 'Persons whose label is unknown (too small, too uncertain, or not coded): left out of trailer_persons_share. Same on every category row.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons_share IS 'trailer_persons / trailer_persons_decided (0-1): share among decided labels only. NULL on the unknown row. Its interval is the one of trailer_persons_share_soft.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_person_seconds IS 'Screen time of this category in person-seconds (s; two persons on screen for 1 s count 2 s).';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_person_seconds_decided IS 'Person-seconds with a decided label: denominator of trailer_screen_time_share.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_person_seconds_unknown IS 'Person-seconds whose label is unknown: left out of trailer_screen_time_share.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_screen_time_share IS 'trailer_person_seconds / trailer_person_seconds_decided (0-1): share of decided screen time. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces_share_ci_low IS '95% interval of poster_faces_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces_share_ci_high IS '95% interval of poster_faces_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons_share_ci_low IS '95% interval of trailer_persons_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons_share_ci_high IS '95% interval of trailer_persons_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.coded_persons IS 'Faces and persons (all categories) whose label for this attribute comes from a human coder; same on every category row. Coding progress: coded_persons / (poster_faces_decided + poster_faces_unknown + trailer_persons_decided + trailer_persons_unknown).';
COMMENT ON COLUMN regard.festival_edition_representation.poster_faces_share_soft IS 'Σ P(category) / n over the poster faces the model or a coder can speak for (big enough, with probabilities; a coder''s label counts 1 or 0), 0-1: the share poster_faces_share_ci_low/high belong to, and the one the CLI reports. Faces too small to decide are left out (they are in poster_faces_unknown). NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_share_soft IS 'Σ P(category)·area / Σ area over the same faces (0-1): the share poster_face_area_share_ci_low/high belong to. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_share_ci_low IS '95% interval of poster_face_area_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.poster_face_area_share_ci_high IS '95% interval of poster_face_area_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_persons_share_soft IS 'Σ P(category) / n over the trailer persons the model or a coder can speak for (0-1): the share trailer_persons_share_ci_low/high belong to. Persons too small to decide are left out (they are in trailer_persons_unknown). NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_screen_time_share_soft IS 'Σ P(category)·screen time / Σ screen time over the same persons (0-1): the share trailer_screen_time_share_ci_low/high belong to. NULL on the unknown row.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_screen_time_share_ci_low IS '95% interval of trailer_screen_time_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.festival_edition_representation.trailer_screen_time_share_ci_high IS '95% interval of trailer_screen_time_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';

-- regard.year_representation
COMMENT ON COLUMN regard.year_representation.film_year IS 'The films'' year as the jobs gave it; NULL: year not given.';
COMMENT ON COLUMN regard.year_representation.attribute IS 'What is measured: gender (perceived), age_band (apparent age, bands 0-17, 18-29, 30-44, 45-59, 60+ by default) or origin (perceived; only from coders or a configured model). Always filter on one attribute.';
COMMENT ON COLUMN regard.year_representation.category IS 'A category of the attribute (female, male; an age band; a coding_scheme label), or unknown: the row counting faces/persons without a decided label, whose shares are NULL.';
COMMENT ON COLUMN regard.year_representation.films IS 'Films of the group with at least one analysed poster or trailer; each film counts once.';
COMMENT ON COLUMN regard.year_representation.posters IS 'Posters with a succeeded analysis, summed over the films.';
COMMENT ON COLUMN regard.year_representation.poster_faces IS 'Faces of this category on those posters (count).';
COMMENT ON COLUMN regard.year_representation.poster_faces_decided IS 'Faces with a decided label (any category but unknown): denominator of poster_faces_share.';
COMMENT ON COLUMN regard.year_representation.poster_faces_unknown IS 'Faces whose label is unknown (too small, too uncertain, or not coded): left out of poster_faces_share. Same on every category row.';
COMMENT ON COLUMN regard.year_representation.poster_faces_share IS 'poster_faces / poster_faces_decided (0-1): share among decided labels only. NULL on the unknown row or without decided faces. Its interval is the one of poster_faces_share_soft.';
COMMENT ON COLUMN regard.year_representation.poster_face_area_px IS 'Face area of this category on the posters, in square pixels (box width x height).';
COMMENT ON COLUMN regard.year_representation.poster_face_area_decided_px IS 'Face area (px²) with a decided label: denominator of poster_face_area_share.';
COMMENT ON COLUMN regard.year_representation.poster_face_area_unknown_px IS 'Face area (px²) whose label is unknown: left out of poster_face_area_share.';
COMMENT ON COLUMN regard.year_representation.poster_face_area_share IS 'poster_face_area_px / poster_face_area_decided_px (0-1): share of the decided face area. NULL on the unknown row.';
COMMENT ON COLUMN regard.year_representation.trailers IS 'Trailers with a succeeded analysis, summed over the films.';
COMMENT ON COLUMN regard.year_representation.trailer_persons IS 'Distinct persons of this category in those trailers, summed over trailers (a person in two trailers counts twice).';
COMMENT ON COLUMN regard.year_representation.trailer_persons_decided IS 'Persons with a decided label: denominator of trailer_persons_share.';
COMMENT ON COLUMN regard.year_representation.trailer_persons_unknown IS 'Persons whose label is unknown (too small, too uncertain, or not coded): left out of trailer_persons_share. Same on every category row.';
COMMENT ON COLUMN regard.year_representation.trailer_persons_share IS 'trailer_persons / trailer_persons_decided (0-1): share among decided labels only. NULL on the unknown row. Its interval is the one of trailer_persons_share_soft.';
COMMENT ON COLUMN regard.year_representation.trailer_person_seconds IS 'Screen time of this category in person-seconds (s; two persons on screen for 1 s count 2 s).';
COMMENT ON COLUMN regard.year_representation.trailer_person_seconds_decided IS 'Person-seconds with a decided label: denominator of trailer_screen_time_share.';
COMMENT ON COLUMN regard.year_representation.trailer_person_seconds_unknown IS 'Person-seconds whose label is unknown: left out of trailer_screen_time_share.';
COMMENT ON COLUMN regard.year_representation.trailer_screen_time_share IS 'trailer_person_seconds / trailer_person_seconds_decided (0-1): share of decided screen time. NULL on the unknown row.';
COMMENT ON COLUMN regard.year_representation.poster_faces_share_ci_low IS '95% interval of poster_faces_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.poster_faces_share_ci_high IS '95% interval of poster_faces_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.trailer_persons_share_ci_low IS '95% interval of trailer_persons_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.trailer_persons_share_ci_high IS '95% interval of trailer_persons_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.coded_persons IS 'Faces and persons (all categories) whose label for this attribute comes from a human coder; same on every category row. Coding progress: coded_persons / (poster_faces_decided + poster_faces_unknown + trailer_persons_decided + trailer_persons_unknown).';
COMMENT ON COLUMN regard.year_representation.poster_faces_share_soft IS 'Σ P(category) / n over the poster faces the model or a coder can speak for (big enough, with probabilities; a coder''s label counts 1 or 0), 0-1: the share poster_faces_share_ci_low/high belong to, and the one the CLI reports. Faces too small to decide are left out (they are in poster_faces_unknown). NULL on the unknown row.';
COMMENT ON COLUMN regard.year_representation.poster_face_area_share_soft IS 'Σ P(category)·area / Σ area over the same faces (0-1): the share poster_face_area_share_ci_low/high belong to. NULL on the unknown row.';
COMMENT ON COLUMN regard.year_representation.poster_face_area_share_ci_low IS '95% interval of poster_face_area_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.poster_face_area_share_ci_high IS '95% interval of poster_face_area_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.trailer_persons_share_soft IS 'Σ P(category) / n over the trailer persons the model or a coder can speak for (0-1): the share trailer_persons_share_ci_low/high belong to. Persons too small to decide are left out (they are in trailer_persons_unknown). NULL on the unknown row.';
COMMENT ON COLUMN regard.year_representation.trailer_screen_time_share_soft IS 'Σ P(category)·screen time / Σ screen time over the same persons (0-1): the share trailer_screen_time_share_ci_low/high belong to. NULL on the unknown row.';
COMMENT ON COLUMN regard.year_representation.trailer_screen_time_share_ci_low IS '95% interval of trailer_screen_time_share_soft over the group''s films, lower bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';
COMMENT ON COLUMN regard.year_representation.trailer_screen_time_share_ci_high IS '95% interval of trailer_screen_time_share_soft over the group''s films, upper bound (0-1): classification variance plus between-film variance, normal approximation (regard.share_se). NULL on the unknown row; unreliable with few films.';

-- regard.person_labels
COMMENT ON COLUMN regard.person_labels.person_id IS 'Id of the face/person (regard.person); deleted by retention.';
COMMENT ON COLUMN regard.person_labels.analysis_id IS 'Id of the analysis (regard.analysis).';
COMMENT ON COLUMN regard.person_labels.media_id IS 'Id of the media file (regard.media).';
COMMENT ON COLUMN regard.person_labels.media_kind IS 'poster or trailer: the kind of the media itself.';
COMMENT ON COLUMN regard.person_labels.media_source IS 'Path or URL the file was read from.';
COMMENT ON COLUMN regard.person_labels.person_kind IS 'poster_face or trailer_person.';
COMMENT ON COLUMN regard.person_labels.number IS 'Face number on the poster / person number in the trailer, from 1: how a coder finds it.';
COMMENT ON COLUMN regard.person_labels.in_latest_analysis IS 'True when this belongs to the latest succeeded analysis of its media, the one the figures count.';
COMMENT ON COLUMN regard.person_labels.gender IS 'Perceived gender that counts: the latest coder label, else the model''s, else unknown.';
COMMENT ON COLUMN regard.person_labels.gender_source IS 'Where gender comes from: coder, model or unknown.';
COMMENT ON COLUMN regard.person_labels.model_gender IS 'The model''s perceived gender (unknown when the face is too small or the model too uncertain).';
COMMENT ON COLUMN regard.person_labels.gender_p_female IS 'Model probability (0-1) of a face perceived as a woman''s; NULL without an estimate.';
COMMENT ON COLUMN regard.person_labels.gender_p_male IS 'Model probability (0-1) of a face perceived as a man''s; NULL without an estimate.';
COMMENT ON COLUMN regard.person_labels.age_years IS 'Apparent age from the age model, years; NULL without one.';
COMMENT ON COLUMN regard.person_labels.age_band IS 'Apparent age band of age_years (e.g. 18-29); NULL without an age estimate.';
COMMENT ON COLUMN regard.person_labels.origin IS 'Perceived origin that counts: the latest coder label, else a configured model''s, else unknown.';
COMMENT ON COLUMN regard.person_labels.face_px IS 'Face height in pixels (median over the person''s faces in a trailer).';
COMMENT ON COLUMN regard.person_labels.face_area_px IS 'Face box area in px² (the key frame''s box in a trailer).';
COMMENT ON COLUMN regard.person_labels.first_seen_s IS 'Trailer: first appearance, seconds from the start.';
COMMENT ON COLUMN regard.person_labels.key_frame_s IS 'Trailer: time (s) of the frame where the face is largest, where a coder looks.';
COMMENT ON COLUMN regard.person_labels.screen_time_s IS 'Trailer: seconds on screen.';
COMMENT ON COLUMN regard.person_labels.prominence_s IS 'Trailer: screen time weighted by face area relative to the frame area (s).';
COMMENT ON COLUMN regard.person_labels.recorded_at IS 'When the face/person was recorded.';

-- regard.quality_failed_analyses
COMMENT ON COLUMN regard.quality_failed_analyses.analysis_id IS 'Id of the analysis (regard.analysis).';
COMMENT ON COLUMN regard.quality_failed_analyses.source IS 'Path or URL the file was read from.';
COMMENT ON COLUMN regard.quality_failed_analyses.content_sha256 IS 'SHA-256 of the file''s content: the media''s identity, whatever its URL. NULL when the file failed before it could be hashed (e.g. download refused).';
COMMENT ON COLUMN regard.quality_failed_analyses.media_kind IS 'poster or trailer when known.';
COMMENT ON COLUMN regard.quality_failed_analyses.error_code IS 'Stable error code (e.g. fetch_http_404, kind_mismatch).';
COMMENT ON COLUMN regard.quality_failed_analyses.error_message IS 'Error message.';
COMMENT ON COLUMN regard.quality_failed_analyses.attempts IS 'Failures of this media, model set and settings so far.';
COMMENT ON COLUMN regard.quality_failed_analyses.pipeline_version IS 'regard version that produced the analysis.';
COMMENT ON COLUMN regard.quality_failed_analyses.model_set_sha256 IS 'SHA-256 of the model set; a new model set gives a new analysis.';
COMMENT ON COLUMN regard.quality_failed_analyses.film_title IS 'Film title the job gave.';
COMMENT ON COLUMN regard.quality_failed_analyses.festival IS 'Festival the job gave.';
COMMENT ON COLUMN regard.quality_failed_analyses.recorded_at IS 'When the failure was recorded.';

-- regard.quality_media
COMMENT ON COLUMN regard.quality_media.analysis_id IS 'Id of the analysis (regard.analysis).';
COMMENT ON COLUMN regard.quality_media.media_id IS 'Id of the media file (regard.media).';
COMMENT ON COLUMN regard.quality_media.content_sha256 IS 'SHA-256 of the file''s content: the media''s identity, whatever its URL.';
COMMENT ON COLUMN regard.quality_media.media_kind IS 'poster or trailer: the kind of the media itself.';
COMMENT ON COLUMN regard.quality_media.source IS 'Path or URL the file was read from.';
COMMENT ON COLUMN regard.quality_media.person_count IS 'Faces on the poster / distinct persons in the trailer.';
COMMENT ON COLUMN regard.quality_media.no_face IS 'True when no face (poster) or no person (trailer) was found.';
COMMENT ON COLUMN regard.quality_media.partial IS 'True when only part of the file could be decoded (see regard.analysis.decode_report): the figures cover the decoded part.';
COMMENT ON COLUMN regard.quality_media.gender_unknown IS 'Faces/persons whose gender is unknown.';

-- regard.quality_summary
COMMENT ON COLUMN regard.quality_summary.analysed_media IS 'Media files with a succeeded analysis.';
COMMENT ON COLUMN regard.quality_summary.failed_analyses IS 'Rows of regard.quality_failed_analyses.';
COMMENT ON COLUMN regard.quality_summary.posters_without_face IS 'Analysed posters on which no face was found.';
COMMENT ON COLUMN regard.quality_summary.trailers_without_person IS 'Analysed trailers in which no person was found.';
COMMENT ON COLUMN regard.quality_summary.faces_and_persons IS 'Poster faces plus trailer persons of the latest analyses.';
COMMENT ON COLUMN regard.quality_summary.gender_unknown IS 'Of those, faces/persons whose gender is unknown.';
COMMENT ON COLUMN regard.quality_summary.gender_unknown_share IS 'gender_unknown / faces_and_persons (0-1); NULL without any face.';

-- The read-only role Metabase connects as: it sees the views, never the tables (the views read
-- the tables with their owner's rights). Roles are cluster-wide, hence IF NOT EXISTS; the grants
-- are per database. No login here: compose (metabase-db) gives it LOGIN and a password. A view
-- added by a later migration needs its own GRANT (a test checks every view is granted).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regard_metabase') THEN
        CREATE ROLE regard_metabase NOLOGIN;
    END IF;
EXCEPTION
    -- Another database of the same server created it concurrently.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA regard TO regard_metabase;
GRANT SELECT ON
    regard.latest_analysis,
    regard.latest_representation,
    regard.film_representation,
    regard.festival_section_representation,
    regard.festival_edition_representation,
    regard.year_representation,
    regard.person_labels,
    regard.quality_failed_analyses,
    regard.quality_failed_jobs,
    regard.quality_media,
    regard.quality_summary
TO regard_metabase;

-- Labels in French and English for attributes and categories, so that a dashboard shows words
-- rather than codes. French is the default (label); label_en beside it. The names of the
-- attributes themselves are the categories of the pseudo-attribute 'attribute'. An association
-- adds its own coding_scheme labels here.
CREATE TABLE regard.label (
    attribute text NOT NULL,
    category  text NOT NULL,
    lang      text NOT NULL CHECK (lang IN ('fr', 'en')),
    label     text NOT NULL CHECK (btrim(label) <> ''),
    PRIMARY KEY (attribute, category, lang)
);
COMMENT ON TABLE regard.label IS
    'Display labels of attributes and categories, per language (fr, en). Read through regard.category_label.';

INSERT INTO regard.label (attribute, category, lang, label) VALUES
    ('attribute', 'gender', 'fr', 'Genre perçu'),
    ('attribute', 'gender', 'en', 'Perceived gender'),
    ('attribute', 'age_band', 'fr', 'Tranche d''âge apparente'),
    ('attribute', 'age_band', 'en', 'Apparent age band'),
    ('attribute', 'origin', 'fr', 'Origine perçue'),
    ('attribute', 'origin', 'en', 'Perceived origin'),
    ('gender', 'female', 'fr', 'Femme'),
    ('gender', 'female', 'en', 'Woman'),
    ('gender', 'male', 'fr', 'Homme'),
    ('gender', 'male', 'en', 'Man'),
    ('gender', 'unknown', 'fr', 'Inconnu'),
    ('gender', 'unknown', 'en', 'Unknown'),
    ('age_band', '0-17', 'fr', '0-17 ans'),
    ('age_band', '0-17', 'en', '0-17 years'),
    ('age_band', '18-29', 'fr', '18-29 ans'),
    ('age_band', '18-29', 'en', '18-29 years'),
    ('age_band', '30-44', 'fr', '30-44 ans'),
    ('age_band', '30-44', 'en', '30-44 years'),
    ('age_band', '45-59', 'fr', '45-59 ans'),
    ('age_band', '45-59', 'en', '45-59 years'),
    ('age_band', '60+', 'fr', '60 ans et plus'),
    ('age_band', '60+', 'en', '60 years and over'),
    ('age_band', 'unknown', 'fr', 'Inconnu'),
    ('age_band', 'unknown', 'en', 'Unknown'),
    ('origin', 'unknown', 'fr', 'Inconnu'),
    ('origin', 'unknown', 'en', 'Unknown'),
    ('origin', 'placeholder_a', 'fr', 'Catégorie A (à remplacer)'),
    ('origin', 'placeholder_a', 'en', 'Category A (to replace)'),
    ('origin', 'placeholder_b', 'fr', 'Catégorie B (à remplacer)'),
    ('origin', 'placeholder_b', 'en', 'Category B (to replace)');

-- One row per labelled (attribute, category): the French label by default, the English beside.
-- A code without a label in a language shows the code itself.
CREATE VIEW regard.category_label AS
SELECT
    k.attribute,
    k.category,
    coalesce(fr.label, en.label, k.category) AS label,
    coalesce(en.label, fr.label, k.category) AS label_en
FROM (SELECT DISTINCT attribute, category FROM regard.label) k
LEFT JOIN regard.label fr ON fr.attribute = k.attribute AND fr.category = k.category AND fr.lang = 'fr'
LEFT JOIN regard.label en ON en.attribute = k.attribute AND en.category = k.category AND en.lang = 'en';

COMMENT ON VIEW regard.category_label IS
    'Display labels: join on (attribute, category) to show label (French, the default) or label_en instead of the code. Attribute names are under attribute = ''attribute''.';
COMMENT ON COLUMN regard.category_label.attribute IS 'The attribute (gender, age_band, origin), or ''attribute'' for the labels of the attributes themselves.';
COMMENT ON COLUMN regard.category_label.category IS 'The category code as it appears in the representation views (e.g. female, 18-29, unknown).';
COMMENT ON COLUMN regard.category_label.label IS 'French label (the default); the English one, or the code, when none is given.';
COMMENT ON COLUMN regard.category_label.label_en IS 'English label; the French one, or the code, when none is given.';

GRANT SELECT ON regard.category_label TO regard_metabase;
