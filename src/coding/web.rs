//! The coding application: routes, sessions, CSRF checks, security headers. Pages are rendered
//! by [`super::pages`]; faces by [`super::faces`].
//!
//! Every response says `Cache-Control: no-store`. Faces and context pictures are served to
//! signed-in coders only, for persons of their own queue or labels (admins: every person), under
//! a rate limit per coder. Every POST checks the CSRF token of its session (the sign-in form:
//! of a signed nonce cookie).

use super::agreement::agreement;
use super::auth::{Signer, random_nonce, verify_password};
use super::faces::{FaceError, FaceRenderer};
use super::pages;
use super::ratelimit::RateLimiter;
use crate::config::Limits;
use crate::media::{FetchPolicy, Fetcher, MediaError};
use crate::store::{CoderAccount, QueueFilter, Store, StoreError};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, LOCATION, SET_COOKIE,
};
use axum::http::{Response, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use serde::Deserialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const SESSION_COOKIE: &str = "regard_session";
const PRE_COOKIE: &str = "regard_signin";

/// How the application runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Hex key for signing cookies; `None`: a random one (sessions end with the process).
    pub session_key: Option<String>,
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// Face and context pictures a coder may load per minute, and at once.
    pub images_per_minute: u32,
    pub image_burst: u32,
    /// Where faces may be fetched from: the worker's rules (media roots, private networks).
    pub fetch: FetchPolicy,
}

impl ServeOptions {
    /// Defaults around a fetch policy: local, random key, 8 h sessions, 120 pictures a minute.
    pub fn new(listen: SocketAddr, fetch: FetchPolicy) -> ServeOptions {
        ServeOptions {
            listen,
            session_key: None,
            session_ttl: Duration::from_secs(8 * 3600),
            secure_cookies: false,
            images_per_minute: 120,
            image_burst: 20,
            fetch,
        }
    }
}

struct App {
    store: Store,
    signer: Signer,
    faces: FaceRenderer,
    limiter: RateLimiter,
    ttl: Duration,
    secure: bool,
    /// Verified against when the name is unknown, so that a wrong name costs the same time as
    /// a wrong password.
    dummy_hash: String,
}

/// Serve until `shutdown` resolves. The bound address is logged (port 0 picks a free one).
pub async fn serve(
    store: Store,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "coding application listening");
    eprintln!("regard coding: listening on http://{local}");
    axum::serve(listener, router(store, &opts)?)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The application's routes, for [`serve`].
pub fn router(store: Store, opts: &ServeOptions) -> anyhow::Result<Router> {
    let signer = match &opts.session_key {
        Some(key) => Signer::from_hex(key)?,
        None => Signer::random(),
    };
    let limits: Limits = opts.fetch.limits.clone();
    let app = Arc::new(App {
        store,
        signer,
        faces: FaceRenderer::new(Fetcher::new(opts.fetch.clone()), limits),
        limiter: RateLimiter::new(opts.images_per_minute, opts.image_burst),
        ttl: opts.session_ttl,
        secure: opts.secure_cookies,
        dummy_hash: super::auth::hash_password(&random_nonce())?,
    });
    Ok(Router::new()
        .route("/", get(home))
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/coding.js", get(script))
        .route("/static/style.css", get(style))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/code", get(code_home))
        .route("/code/queue", post(fill_queue))
        .route("/code/{attribute}", get(code_page))
        .route("/api/queue/{attribute}", get(api_queue))
        .route("/api/label", post(api_label))
        .route("/api/skip", post(api_skip))
        .route("/api/undo", post(api_undo))
        .route("/face/{person_id}", get(face))
        .route("/context/{person_id}", get(context))
        .route("/admin", get(admin_page))
        .route("/admin/adjudicate", post(adjudicate))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app))
}

async fn security_headers(mut response: Response<axum::body::Body>) -> Response<axum::body::Body> {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, CACHE_CONTROL, "no-store, max-age=0");
    set(h, HeaderName::from_static("pragma"), "no-cache");
    set(
        h,
        HeaderName::from_static("x-content-type-options"),
        "nosniff",
    );
    set(h, HeaderName::from_static("x-frame-options"), "DENY");
    set(h, HeaderName::from_static("referrer-policy"), "no-referrer");
    set(
        h,
        HeaderName::from_static("content-security-policy"),
        "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    response
}

/// What a handler can fail with, as the response a browser gets.
enum WebError {
    /// No live session: pages redirect to the sign-in page, the rest get 401 and no body.
    SignIn {
        page: bool,
    },
    Csrf,
    Forbidden,
    TooMany,
    NotFound,
    BadRequest(String),
    Internal(String),
}

impl IntoResponse for WebError {
    fn into_response(self) -> axum::response::Response {
        match self {
            WebError::SignIn { page: true } => see_other("/login").into_response(),
            WebError::SignIn { page: false } => {
                (StatusCode::UNAUTHORIZED, "sign in first").into_response()
            }
            WebError::Csrf => {
                (StatusCode::FORBIDDEN, "CSRF token missing or wrong").into_response()
            }
            WebError::Forbidden => (StatusCode::FORBIDDEN, "not allowed").into_response(),
            WebError::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many pictures, slow down",
            )
                .into_response(),
            WebError::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m).into_response(),
            WebError::Internal(m) => {
                tracing::error!(error = %m, "coding application error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { .. } => WebError::BadRequest(e.to_string()),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<FaceError> for WebError {
    fn from(e: FaceError) -> Self {
        match &e {
            FaceError::Media(MediaError::NotFound { .. }) => WebError::NotFound,
            _ => WebError::Internal(e.to_string()),
        }
    }
}

type WebResult<T> = Result<T, WebError>;

fn see_other(to: &str) -> impl IntoResponse + use<> {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())])
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in coder and the id of their session.
struct Session {
    coder: CoderAccount,
    id: String,
}

impl App {
    async fn session(&self, headers: &HeaderMap, page: bool) -> WebResult<Session> {
        let signed = cookie(headers, SESSION_COOKIE).ok_or(WebError::SignIn { page })?;
        let id = self
            .signer
            .verify("session", signed)
            .ok_or(WebError::SignIn { page })?;
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| WebError::SignIn { page })?;
        let coder = self
            .store
            .session_coder(uuid)
            .await?
            .ok_or(WebError::SignIn { page })?;
        Ok(Session {
            coder,
            id: id.to_string(),
        })
    }

    /// The session of a POST, with its CSRF token checked.
    async fn posted(&self, headers: &HeaderMap, csrf: Option<&str>) -> WebResult<Session> {
        let session = self.session(headers, false).await?;
        match csrf {
            Some(token) if self.signer.check_csrf(&session.id, token) => Ok(session),
            _ => Err(WebError::Csrf),
        }
    }

    fn csrf(&self, session: &Session) -> String {
        self.signer.csrf_token(&session.id)
    }

    fn cookie_header(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    async fn scheme_known(&self, attribute: &str) -> WebResult<crate::store::CodingScheme> {
        self.store
            .coding_schemes()
            .await?
            .into_iter()
            .find(|s| s.attribute == attribute)
            .ok_or(WebError::NotFound)
    }
}

async fn script() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("coding.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> axum::response::Response {
    match app.session(&headers, true).await {
        Ok(_) => see_other("/code").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn login_page(State(app): State<Arc<App>>) -> impl IntoResponse {
    sign_in_form(&app, None, StatusCode::OK)
}

fn sign_in_form(app: &App, error: Option<&str>, status: StatusCode) -> axum::response::Response {
    let nonce = random_nonce();
    let token = app.signer.csrf_token(&format!("signin:{nonce}"));
    let cookie = app.cookie_header(PRE_COOKIE, &app.signer.sign("signin", &nonce), 3600);
    (
        status,
        [(SET_COOKIE, cookie)],
        Html(pages::sign_in(&token, error)),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct SignIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    csrf: Option<String>,
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> WebResult<axum::response::Response> {
    let nonce = cookie(&headers, PRE_COOKIE)
        .and_then(|c| app.signer.verify("signin", c))
        .ok_or(WebError::Csrf)?;
    let token = form.csrf.as_deref().unwrap_or("");
    if !app.signer.check_csrf(&format!("signin:{nonce}"), token) {
        return Err(WebError::Csrf);
    }
    let account = app.store.coder_by_name(&form.name).await?;
    let hash = account
        .as_ref()
        .map_or(app.dummy_hash.clone(), |a| a.password_hash.clone());
    let password = form.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(account) = account.filter(|_| ok) else {
        tracing::warn!(coder = %form.name, "failed sign-in");
        return Ok(sign_in_form(
            &app,
            Some("Wrong name or password."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let id = app.store.start_session(account.coder_id, app.ttl).await?;
    tracing::info!(coder = %account.name, "signed in");
    let session = app.cookie_header(
        SESSION_COOKIE,
        &app.signer.sign("session", &id.to_string()),
        app.ttl.as_secs(),
    );
    let clear = app.cookie_header(PRE_COOKIE, "", 0);
    let mut response = see_other("/code").into_response();
    let h = response.headers_mut();
    for c in [session, clear] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(SET_COOKIE, v);
        }
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> WebResult<axum::response::Response> {
    let session = app.posted(&headers, form.csrf.as_deref()).await?;
    if let Ok(id) = uuid::Uuid::parse_str(&session.id) {
        app.store.end_session(id).await?;
    }
    tracing::info!(coder = %session.coder.name, "signed out");
    let clear = app.cookie_header(SESSION_COOKIE, "", 0);
    Ok((
        StatusCode::SEE_OTHER,
        [(LOCATION, "/login".to_string()), (SET_COOKIE, clear)],
    )
        .into_response())
}

async fn code_home(State(app): State<Arc<App>>, headers: HeaderMap) -> WebResult<Html<String>> {
    let session = app.session(&headers, true).await?;
    let schemes = app.store.coding_schemes().await?;
    let mut left = Vec::new();
    for s in &schemes {
        left.push(app.store.queue_left(&session.coder, &s.attribute).await?);
    }
    Ok(Html(pages::code_home(
        &session.coder,
        &app.csrf(&session),
        &schemes,
        &left,
    )))
}

#[derive(Debug, Deserialize)]
struct QueueForm {
    csrf: Option<String>,
    attribute: String,
    festival: Option<String>,
    edition: Option<String>,
    section: Option<String>,
    film_id: Option<String>,
}

fn optional_number<T: std::str::FromStr>(what: &str, v: Option<&str>) -> WebResult<Option<T>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| WebError::BadRequest(format!("{what} {s:?} is not a number"))),
    }
}

async fn fill_queue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<QueueForm>,
) -> WebResult<axum::response::Response> {
    let session = app.posted(&headers, form.csrf.as_deref()).await?;
    let scheme = app.scheme_known(&form.attribute).await?;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let filter = QueueFilter {
        festival: text(&form.festival),
        edition: optional_number("edition", form.edition.as_deref())?,
        section: text(&form.section),
        film_id: optional_number("film id", form.film_id.as_deref())?,
    };
    let n = app
        .store
        .fill_queue(&session.coder, &scheme.attribute, &filter)
        .await?;
    tracing::info!(coder = %session.coder.name, attribute = %scheme.attribute, persons = n, "work queue filled");
    Ok(see_other(&format!("/code/{}", scheme.attribute)).into_response())
}

async fn code_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(attribute): Path<String>,
) -> WebResult<Html<String>> {
    let session = app.session(&headers, true).await?;
    let scheme = app.scheme_known(&attribute).await?;
    Ok(Html(pages::coding(
        &session.coder,
        &app.csrf(&session),
        &scheme,
    )))
}

#[derive(Debug, Deserialize)]
struct QueueQuery {
    n: Option<i64>,
}

async fn api_queue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(attribute): Path<String>,
    Query(q): Query<QueueQuery>,
) -> WebResult<axum::response::Response> {
    let session = app.session(&headers, false).await?;
    let n = q.n.unwrap_or(3).clamp(1, 10);
    let persons = app
        .store
        .next_in_queue(&session.coder, &attribute, n)
        .await?;
    let left = app.store.queue_left(&session.coder, &attribute).await?;
    Ok(axum::Json(serde_json::json!({ "left": left, "persons": persons })).into_response())
}

#[derive(Debug, Deserialize)]
struct LabelForm {
    csrf: Option<String>,
    attribute: String,
    person_id: i64,
    label: String,
}

async fn api_label(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<LabelForm>,
) -> WebResult<axum::response::Response> {
    let session = app.posted(&headers, form.csrf.as_deref()).await?;
    app.store
        .record_coder_label(&session.coder, &form.attribute, form.person_id, &form.label)
        .await?;
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

#[derive(Debug, Deserialize)]
struct SkipForm {
    csrf: Option<String>,
    attribute: String,
    person_id: i64,
}

async fn api_skip(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SkipForm>,
) -> WebResult<axum::response::Response> {
    let session = app.posted(&headers, form.csrf.as_deref()).await?;
    app.store
        .skip_person(&session.coder, &form.attribute, form.person_id)
        .await?;
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

#[derive(Debug, Deserialize)]
struct UndoForm {
    csrf: Option<String>,
    attribute: String,
}

async fn api_undo(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<UndoForm>,
) -> WebResult<axum::response::Response> {
    let session = app.posted(&headers, form.csrf.as_deref()).await?;
    let undone = app
        .store
        .undo_last_label(&session.coder, &form.attribute)
        .await?;
    Ok(axum::Json(serde_json::json!({ "person_id": undone.map(|u| u.person_id) })).into_response())
}

async fn picture(
    app: &App,
    headers: &HeaderMap,
    person_id: i64,
    context: bool,
) -> WebResult<axum::response::Response> {
    let session = app.session(headers, false).await?;
    if !app.limiter.allow(session.coder.coder_id) {
        return Err(WebError::TooMany);
    }
    if !app.store.may_see_person(&session.coder, person_id).await? {
        return Err(WebError::Forbidden);
    }
    let source = app
        .store
        .face_source(person_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let jpeg = if context {
        app.faces.context(&source).await?
    } else {
        app.faces.face(&source).await?
    };
    Ok(([(CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

async fn face(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(person_id): Path<i64>,
) -> WebResult<axum::response::Response> {
    picture(&app, &headers, person_id, false).await
}

async fn context(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(person_id): Path<i64>,
) -> WebResult<axum::response::Response> {
    picture(&app, &headers, person_id, true).await
}

async fn admin_page(State(app): State<Arc<App>>, headers: HeaderMap) -> WebResult<Html<String>> {
    let session = app.session(&headers, true).await?;
    if !session.coder.is_admin {
        return Err(WebError::Forbidden);
    }
    let schemes = app.store.coding_schemes().await?;
    let mut sections = Vec::new();
    for scheme in schemes {
        let progress = app.store.scheme_progress(&scheme.attribute).await?;
        let units = app.store.coded_units(&scheme.attribute).await?;
        let disagreements = app.store.disagreements(&scheme.attribute, 50).await?;
        sections.push(pages::AdminScheme {
            agreement: agreement(&units),
            scheme,
            progress,
            disagreements,
        });
    }
    let figures = app.store.origin_figures(None, None).await?;
    Ok(Html(pages::admin(
        &session.coder,
        &app.csrf(&session),
        &sections,
        &figures,
    )))
}

async fn adjudicate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<LabelForm>,
) -> WebResult<axum::response::Response> {
    let session = app.posted(&headers, form.csrf.as_deref()).await?;
    if !session.coder.is_admin {
        return Err(WebError::Forbidden);
    }
    app.store
        .adjudicate(&session.coder, &form.attribute, form.person_id, &form.label)
        .await?;
    Ok(see_other("/admin").into_response())
}
