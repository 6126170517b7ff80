//! The HTML of the coding application: plain server-rendered pages, every value escaped.

use super::agreement::Agreement;
use crate::store::{CoderAccount, CodingScheme, Disagreement, OriginFigure, SchemeProgress};
use std::fmt::Write;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The keyboard key of each category of a scheme: `u` for unknown (unsure), digits 1-9 for the
/// others in scheme order (a scheme with more than nine decided categories gets no key beyond).
pub fn keys(scheme: &CodingScheme) -> Vec<(Option<String>, &str, &str)> {
    let mut digit = 0;
    scheme
        .categories
        .iter()
        .map(|c| {
            let key = if c.label == "unknown" {
                Some("u".to_string())
            } else {
                digit += 1;
                (digit <= 9).then(|| digit.to_string())
            };
            (key, c.label.as_str(), c.display.as_str())
        })
        .collect()
}

fn page(title: &str, csrf: Option<&str>, body_attrs: &str, body: &str) -> String {
    let meta = csrf.map_or(String::new(), |t| {
        format!("<meta name=\"csrf\" content=\"{}\">", esc(t))
    });
    format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{meta}\
         <title>{} · regard</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
         <script src=\"/static/coding.js\" defer></script></head>\
         <body{body_attrs}>{body}</body></html>\n",
        esc(title)
    )
}

fn header(coder: &CoderAccount, csrf: &str, title: &str) -> String {
    let admin = if coder.is_admin {
        "<a href=\"/admin\">Admin</a>"
    } else {
        ""
    };
    format!(
        "<header><strong>regard</strong><span class=\"title\">{}</span>\
         <nav><a href=\"/code\">Queues</a>{admin}<span class=\"who\">{}</span>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button id=\"logout\" type=\"submit\">Sign out</button></form></nav></header>",
        esc(title),
        esc(&coder.name),
        esc(csrf)
    )
}

pub fn sign_in(csrf: &str, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    page(
        "Sign in",
        None,
        "",
        &format!(
            "<main class=\"narrow\"><h1>regard · coding</h1>{error}\
             <form method=\"post\" action=\"/login\" id=\"signin\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>Name <input name=\"name\" id=\"name\" autocomplete=\"username\" required autofocus></label>\
             <label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\" id=\"signin-button\">Sign in</button></form>\
             <p class=\"note\">Faces are rendered from the source for this screen only; nothing but your labels is stored.</p></main>",
            esc(csrf)
        ),
    )
}

pub fn code_home(
    coder: &CoderAccount,
    csrf: &str,
    schemes: &[CodingScheme],
    left: &[i64],
) -> String {
    let mut options = String::new();
    let mut queues = String::new();
    for (s, n) in schemes.iter().zip(left) {
        let _ = write!(
            options,
            "<option value=\"{}\">{} (v{})</option>",
            esc(&s.attribute),
            esc(&s.title),
            s.version
        );
        if *n > 0 {
            let _ = write!(
                queues,
                "<li><a href=\"/code/{}\">{}</a>: {n} left</li>",
                esc(&s.attribute),
                esc(&s.title)
            );
        }
    }
    let queues = if queues.is_empty() {
        "<p>No queue yet.</p>".to_string()
    } else {
        format!("<ul id=\"queues\">{queues}</ul>")
    };
    let body = format!(
        "{}<main class=\"narrow\"><h1>Work queues</h1>{queues}\
         <h2>New queue</h2><form method=\"post\" action=\"/code/queue\" id=\"new-queue\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Scheme <select name=\"attribute\" id=\"attribute\">{options}</select></label>\
         <label>Festival <input name=\"festival\" id=\"festival\"></label>\
         <label>Edition <input name=\"edition\" id=\"edition\" inputmode=\"numeric\"></label>\
         <label>Section <input name=\"section\" id=\"section\"></label>\
         <label>Film id <input name=\"film_id\" id=\"film_id\" inputmode=\"numeric\"></label>\
         <button type=\"submit\" id=\"start\">Start coding</button></form>\
         <p class=\"note\">Each person is coded by two coders independently: the queue holds the \
         persons you have not coded and fewer than two coders have.</p></main>",
        header(coder, csrf, "Queues"),
        esc(csrf)
    );
    page("Queues", Some(csrf), "", &body)
}

pub fn coding(coder: &CoderAccount, csrf: &str, scheme: &CodingScheme) -> String {
    let mut buttons = String::new();
    for (key, label, display) in keys(scheme) {
        let display = if label == "unknown" {
            "Unsure"
        } else {
            display
        };
        let key_attr = key
            .as_deref()
            .map_or(String::new(), |k| format!(" data-key=\"{}\"", esc(k)));
        let kbd = key
            .as_deref()
            .map_or(String::new(), |k| format!("<kbd>{}</kbd> ", esc(k)));
        let _ = write!(
            buttons,
            "<button type=\"button\" class=\"code\" data-label=\"{}\"{key_attr}>{kbd}{}</button>",
            esc(label),
            esc(display)
        );
    }
    let title = format!("{} (v{})", scheme.title, scheme.version);
    let body = format!(
        "{}<main class=\"coding\">\
         <section id=\"person\" data-id=\"\" aria-live=\"polite\">\
         <figure><img id=\"face\" alt=\"The face to code\"><figcaption id=\"caption\">Loading…</figcaption></figure>\
         <img id=\"context\" alt=\"Context: the whole poster or frame, the face boxed\" hidden></section>\
         <section id=\"keys\">{buttons}\
         <button type=\"button\" id=\"skip\" data-key=\"s\"><kbd>s</kbd> Skip</button>\
         <button type=\"button\" id=\"undo\" data-key=\"z\"><kbd>z</kbd> Undo</button>\
         <button type=\"button\" id=\"context-toggle\" data-key=\"c\"><kbd>c</kbd> Context</button>\
         <p id=\"progress\"><span id=\"left\">…</span> left · <span id=\"done\">0</span> coded now</p>\
         <p id=\"status\" role=\"status\"></p></section></main>",
        header(coder, csrf, &title),
    );
    page(
        &title,
        Some(csrf),
        &format!(
            " data-attribute=\"{}\" data-state=\"loading\"",
            esc(&scheme.attribute)
        ),
        &body,
    )
}

/// One scheme on the admin page.
pub struct AdminScheme {
    pub scheme: CodingScheme,
    pub progress: SchemeProgress,
    pub agreement: Agreement,
    pub disagreements: Vec<Disagreement>,
}

fn figure(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.3}"))
}

fn percent(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{:.1} %", 100.0 * v))
}

pub fn admin(
    coder: &CoderAccount,
    csrf: &str,
    schemes: &[AdminScheme],
    origin: &[OriginFigure],
) -> String {
    let mut body = header(coder, csrf, "Admin");
    body.push_str("<main class=\"admin\"><h1>Coding progress and agreement</h1>");
    for s in schemes {
        let p = &s.progress;
        let a = &s.agreement;
        let _ = write!(
            body,
            "<section class=\"scheme\" id=\"scheme-{attr}\"><h2>{} <small>v{}</small></h2>\
             <p>{} persons · coded once {} · twice {} · disputed {} · adjudicated {}</p>\
             <table class=\"agreement\"><tr><th>Pairs</th><th>Observed agreement</th>\
             <th>Cohen's kappa</th><th>Krippendorff's alpha</th></tr>\
             <tr><td>{}</td><td>{}</td><td class=\"kappa\">{}</td><td class=\"alpha\">{}</td></tr></table>",
            esc(&s.scheme.title),
            s.scheme.version,
            p.persons,
            p.coded_once,
            p.coded_twice,
            p.disputed,
            p.adjudicated,
            a.pairs,
            percent(a.observed),
            figure(a.cohen_kappa),
            figure(a.krippendorff_alpha),
            attr = esc(&s.scheme.attribute),
        );
        if !p.coders.is_empty() {
            body.push_str(
                "<table><tr><th>Coder</th><th>Labels</th><th>Unsure</th><th>Last</th></tr>",
            );
            for c in &p.coders {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.coder),
                    c.labels,
                    c.unsure,
                    c.last_at
                        .map_or(String::new(), |t| t.format("%Y-%m-%d %H:%M").to_string())
                );
            }
            body.push_str("</table>");
        }
        if !s.disagreements.is_empty() {
            body.push_str("<h3>To adjudicate</h3><div class=\"disputes\">");
            for d in &s.disagreements {
                let given: Vec<String> = d
                    .labels
                    .iter()
                    .map(|(c, l)| format!("{}: {}", esc(c), esc(l)))
                    .collect();
                let mut options = String::new();
                for c in &s.scheme.categories {
                    let _ = write!(
                        options,
                        "<option value=\"{}\">{}</option>",
                        esc(&c.label),
                        esc(&c.display)
                    );
                }
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"/admin/adjudicate\" class=\"dispute\">\
                     <img src=\"/face/{id}\" alt=\"face {id}\" loading=\"lazy\">\
                     <p>{} · {} n° {} — {}</p>\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <input type=\"hidden\" name=\"attribute\" value=\"{}\">\
                     <input type=\"hidden\" name=\"person_id\" value=\"{id}\">\
                     <select name=\"label\">{options}</select><button type=\"submit\">Decide</button></form>",
                    esc(d.film_title.as_deref().unwrap_or("?")),
                    esc(&d.media_kind),
                    d.number,
                    given.join(", "),
                    esc(csrf),
                    esc(&s.scheme.attribute),
                    id = d.person_id,
                );
            }
            body.push_str("</div>");
        }
        body.push_str("</section>");
    }
    body.push_str(
        "<section id=\"origin\"><h2>Perceived origin by festival</h2>\
         <table><tr><th>Festival</th><th>Edition</th><th>Media</th><th>Category</th>\
         <th>Share</th><th>95% interval</th><th>Coverage</th><th></th></tr>",
    );
    for f in origin {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({}/{})</td><td>{}</td></tr>",
            esc(&f.festival),
            f.edition,
            esc(&f.media_kind),
            esc(&f.category),
            percent(f.share),
            match (f.share_ci_low, f.share_ci_high) {
                (Some(l), Some(h)) => format!("{:.1}–{:.1} %", 100.0 * l, 100.0 * h),
                _ => "–".into(),
            },
            percent(f.coverage),
            f.decided,
            f.total,
            if f.incomplete {
                "<span class=\"incomplete\">incomplete</span>"
            } else {
                ""
            }
        );
    }
    body.push_str("</table></section></main>");
    page("Admin", Some(csrf), "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SchemeCategory;

    #[test]
    fn text_is_escaped_and_keys_follow_the_scheme() {
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        let scheme = CodingScheme {
            attribute: "origin".into(),
            title: "Origine perçue".into(),
            version: 2,
            categories: ["unknown", "a", "b"]
                .iter()
                .map(|l| SchemeCategory {
                    label: l.to_string(),
                    display: l.to_uppercase(),
                    description: String::new(),
                })
                .collect(),
        };
        let k: Vec<Option<String>> = keys(&scheme).into_iter().map(|k| k.0).collect();
        assert_eq!(k, [Some("u".into()), Some("1".into()), Some("2".into())]);
    }
}
