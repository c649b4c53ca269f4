//! The console's sessions seen from outside a browser, as a forger or a guesser
//! would: what the cookie opens, for how long, and how wrong tokens are slowed down.

use std::time::Duration;

use e2e::{GatewayProcess, TestConfig, ADMIN_TOKEN};

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token` from the console's own origin; the answer.
async fn sign_in(url: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{url}/console/sign-in"))
        .header("origin", url)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The `gateway_console=…` pair a sign-in set.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_session_opens_the_admin_api_until_it_expires() {
    let config = TestConfig::new("file", None, "", "");
    let gateway = GatewayProcess::start_with(&config, |command| {
        command.env("GATEWAY_AUTH__CONSOLE_SESSION_TTL", "2s");
    })
    .await;
    let url = &gateway.url;
    let signed_in = sign_in(url, ADMIN_TOKEN).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/console/");
    let set_cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = session_cookie(&signed_in);

    let page = client()
        .get(format!("{url}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let settings = client()
        .get(format!("{url}/v1/admin/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), 200);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let expired = client()
        .get(format!("{url}/v1/admin/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    let page = client()
        .get(format!("{url}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "back to the sign-in form");
    assert_eq!(page.headers()["location"], "/console/sign-in");
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_wrong_tokens_are_held_off() {
    let config = TestConfig::new("file", None, "", "");
    let gateway = GatewayProcess::start_with(&config, |command| {
        command.env("GATEWAY_AUTH__MAX_FAILURES", "3");
    })
    .await;
    let url = &gateway.url;
    let through_proxy = client()
        .post(format!("{url}/console/sign-in"))
        .header("origin", url)
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(through_proxy.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));

    for _ in 0..3 {
        let wrong = sign_in(url, "not-the-token-0123456789").await;
        assert_eq!(wrong.status(), 401);
        assert!(wrong.text().await.unwrap().contains("That token is not valid."));
    }
    let held_off = sign_in(url, ADMIN_TOKEN).await;
    assert_eq!(held_off.status(), 429, "even the right token, while held off");
    assert!(held_off.headers().get("set-cookie").is_none());
    assert!(held_off.text().await.unwrap().contains("Too many wrong tokens"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_gateway_of_a_fleet_works_on_another_and_ends_on_all() {
    let url = e2e::postgres::database();
    let configs = [
        TestConfig::new("file", None, "", "").with_storage_url(&url),
        TestConfig::new("file", None, "", "").with_storage_url(&url),
    ];
    let a = GatewayProcess::start(&configs[0]).await;
    let b = GatewayProcess::start(&configs[1]).await;
    let cookie = session_cookie(&sign_in(&a.url, ADMIN_TOKEN).await);

    let on_b = client()
        .get(format!("{}/v1/admin/settings", b.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_b.status(),
        200,
        "a load balancer may send the next request to b"
    );

    let signed_out = client()
        .post(format!("{}/console/sign-out", b.url))
        .header("origin", &b.url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 303);
    assert!(signed_out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let on_a = client()
        .get(format!("{}/v1/admin/settings", a.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status(), 401, "signed out on b is signed out on a");
}

#[tokio::test]
async fn a_session_in_use_lives_on_and_one_left_idle_ends() {
    let config = TestConfig::new("file", None, "", "");
    let gateway = GatewayProcess::start_with(&config, |command| {
        command.env("GATEWAY_AUTH__CONSOLE_IDLE_TIMEOUT", "2s");
    })
    .await;
    let url = &gateway.url;
    let cookie = session_cookie(&sign_in(url, ADMIN_TOKEN).await);
    let settings = || async {
        client()
            .get(format!("{url}/v1/admin/settings"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
    };
    // Used every 1.2 s, it outlives the 2 s idle timeout.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(settings().await, 200);
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(settings().await, 401, "left idle past the timeout");
}
