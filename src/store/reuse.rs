//! Finding a result that is already stored, so that a redelivered or duplicate job is filed
//! against it instead of being analysed again.

use super::keys::ProvenanceKeys;
use super::write::link_context;
use super::{AnalysisId, RecordOutcome, Store, StoreError};
use crate::domain::{Analysis, MediaContext};

impl Store {
    /// The succeeded analysis of these bytes under these keys, with its full result, if one is
    /// stored. A result whose per-person rows were removed by retention is not returned (its
    /// JSON no longer holds the whole analysis): the caller analyses again, and the write
    /// keeps the stored success.
    pub async fn stored_success(
        &self,
        content_sha256: &str,
        keys: &ProvenanceKeys,
    ) -> Result<Option<(AnalysisId, Analysis)>, StoreError> {
        let row: Option<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT a.analysis_id, a.result
             FROM regard.analysis a JOIN regard.media m USING (media_id)
             WHERE m.content_sha256 = $1 AND a.model_set_sha256 = $2
               AND a.settings_sha256 = $3 AND a.status = 'succeeded'
               AND a.result IS NOT NULL AND a.persons_purged_at IS NULL",
        )
        .bind(content_sha256)
        .bind(&keys.model_set_sha256)
        .bind(&keys.settings_sha256)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, result)) = row else {
            return Ok(None);
        };
        match serde_json::from_value::<Analysis>(result) {
            Ok(analysis) => Ok(Some((AnalysisId(id), analysis))),
            Err(e) => {
                // Written by another version of the result type: analysing again is correct,
                // only slower.
                tracing::warn!(analysis_id = id, error = %e, "stored result unreadable; analysing again");
                Ok(None)
            }
        }
    }

    /// File a stored analysis's media under `ctx` (film, festival selection), as recording it
    /// would have. Returns the analysis with `new == false`.
    pub async fn attach(
        &self,
        analysis_id: AnalysisId,
        ctx: &MediaContext,
        source: &str,
    ) -> Result<RecordOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let media_id: i64 =
            sqlx::query_scalar("SELECT media_id FROM regard.analysis WHERE analysis_id = $1")
                .bind(analysis_id.0)
                .fetch_one(&mut *tx)
                .await?;
        link_context(&mut tx, ctx, media_id, source).await?;
        tx.commit().await?;
        Ok(RecordOutcome {
            analysis_id,
            new: false,
        })
    }
}
