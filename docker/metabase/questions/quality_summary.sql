-- Data quality at a glance: media analysed, failures, media without any face, unknown gender.
SELECT * FROM regard.quality_summary;
