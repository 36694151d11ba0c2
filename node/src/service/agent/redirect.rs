//! Following redirects by hand: ureq would turn a redirected POST into a GET (301–303) or refuse
//! it (307/308), while the original keeps the method and body on every redirect (curl's
//! `CURL_REDIR_POST_ALL`). Cookies set along the way go back to the host that set them, so a
//! login that sets a cookie and redirects works.

/// `location` (a `Location` header) resolved against `base`.
pub fn resolve(base: &str, location: &str) -> String {
    let location = location.trim();
    if has_scheme(location) {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net) = location.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if location.starts_with('?') {
        return format!("{scheme}://{authority}{path}{location}");
    }
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{scheme}://{authority}{dir}{location}")
}

/// Whether `location` starts with a URL scheme (`https:`), i.e. is absolute; a relative one
/// may still contain `://` in its query (`/login?next=http://x/`).
fn has_scheme(location: &str) -> bool {
    let Some((scheme, _)) = location.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

/// The scheme, host and port of `url`, lowercase: where cookies and credentials belong (an
/// https → http redirect to the same host is another origin: nothing goes in clear text).
pub fn host(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}").to_ascii_lowercase()
}

/// Cookies received during one request's redirects, by host (their Domain and Path attributes
/// are not interpreted: they go back to the host that set them only).
#[derive(Debug, Default)]
pub struct Jar {
    cookies: Vec<(String, String, String)>,
}

impl Jar {
    /// Keeps the cookie of a `Set-Cookie` value received from `host`.
    pub fn set(&mut self, host: &str, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let name = name.trim();
        self.cookies.retain(|(h, n, _)| !(h == host && n == name));
        self.cookies
            .push((host.to_owned(), name.to_owned(), value.trim().to_owned()));
    }

    /// The `Cookie` header for a request to `host`, if any cookie belongs there.
    pub fn header(&self, host: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let b = "http://h:8/a/b/c?q=1";
        assert_eq!(resolve(b, "https://o/x"), "https://o/x");
        assert_eq!(resolve(b, "//o/x"), "http://o/x");
        assert_eq!(resolve(b, "/x?y"), "http://h:8/x?y");
        assert_eq!(resolve(b, "d"), "http://h:8/a/b/d");
        assert_eq!(resolve(b, "?z"), "http://h:8/a/b/c?z");
        assert_eq!(resolve("http://h", "d"), "http://h/d");
    }

    #[test]
    fn hosts_and_cookies() {
        assert_eq!(
            host("http://u:p@Example.COM:80/x?y"),
            "http://example.com:80"
        );
        assert_ne!(host("https://h/a"), host("http://h/a"));
        assert_eq!(
            resolve("http://h/a", "/login?next=http://x/y"),
            "http://h/login?next=http://x/y"
        );
        let mut jar = Jar::default();
        jar.set("a", "s=1; Path=/; HttpOnly");
        jar.set("a", "t=2");
        jar.set("a", "s=3");
        jar.set("b", "u=4");
        jar.set("a", "broken");
        assert_eq!(jar.header("a").as_deref(), Some("t=2; s=3"));
        assert_eq!(jar.header("c"), None);
    }
}
