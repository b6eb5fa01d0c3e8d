//! Real form builders' payloads, end to end: signature, mapping, idempotency.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;

use crate::both;
use crate::support::{Db, TestApp};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/webform/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn hmac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

const PROVIDERS: &str = r#"
[[forms]]
id = "tilda"
provider = "tilda"
default_region = "RU"

[[forms]]
id = "webflow"
provider = "webflow"
secret = "wf-secret"

[[forms]]
id = "typeform"
provider = "typeform"
secret = "tf-secret"

[[forms]]
id = "jotform"
provider = "jotform"

[[forms]]
id = "elementor"
provider = "elementor"
default_region = "ES"
"#;

async fn post(
    app: &TestApp,
    form: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut request =
        app.client.post(app.url(&format!("/api/v1/forms/{form}"))).header("content-type", content_type).body(body);
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let r = request.send().await.expect("post");
    (r.status(), r.json().await.expect("json"))
}

fn identities(lead: &Value) -> Vec<String> {
    lead["contact"]["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| format!("{}:{}", i["kind"].as_str().unwrap_or(""), i["value"].as_str().unwrap_or("")))
        .collect()
}

async fn form_builders_payloads_become_leads(db: Db) {
    let app = TestApp::spawn(db, PROVIDERS).await;

    // Tilda pings a new webhook with test=test: 200, no lead.
    let (status, body) = post(&app, "tilda", "application/x-www-form-urlencoded", fixture("tilda_test.txt"), &[]).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_items").await, 0);

    // Tilda submission; a resend with the same tranid is the same submission.
    let (status, body) = post(&app, "tilda", "application/x-www-form-urlencoded", fixture("tilda.txt"), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tilda = app.lead(body["id"].as_str().expect("id")).await;
    assert_eq!(tilda["contact"]["name"], "Иван Петров");
    assert_eq!(identities(&tilda), ["email:ivan.petrov@example.ru", "phone:+79123456789"]);
    assert_eq!(tilda["source"]["utm_source"], "yandex");
    assert!(tilda["interactions"][0]["text"].as_str().is_some_and(|t| t.contains("дизайн лендинга")));
    let mut resent = fixture("tilda.txt");
    resent.extend_from_slice(b"&extra=resent");
    let (_, again) = post(&app, "tilda", "application/x-www-form-urlencoded", resent, &[]).await;
    assert_eq!(again["duplicate"], true, "tranid is the idempotency key");

    // Webflow: hex HMAC of "timestamp:body".
    let body = fixture("webflow.json");
    let ts = jiff::Timestamp::now().as_millisecond().to_string();
    let sig = hex::encode(hmac("wf-secret", &[ts.as_bytes(), b":", &body]));
    let (status, _) = post(&app, "webflow", "application/json", body.clone(), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned Webflow posts are refused");
    let (status, res) =
        post(&app, "webflow", "application/json", body, &[("x-webflow-timestamp", ts), ("x-webflow-signature", sig)])
            .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let webflow = app.lead(res["id"].as_str().expect("id")).await;
    assert_eq!(webflow["contact"]["name"], "Emma Schmidt");
    assert_eq!(identities(&webflow), ["email:emma.schmidt@example.de", "phone:+4930901820"]);
    assert_eq!(webflow["source"]["utm_source"], "linkedin", "UTM from the page URL");

    // Typeform: sha256= base64 HMAC of the body.
    let body = fixture("typeform.json");
    let sig = format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(hmac("tf-secret", &[&body])));
    let (status, _) =
        post(&app, "typeform", "application/json", body.clone(), &[("typeform-signature", "sha256=bm9wZQ==".into())])
            .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, res) = post(&app, "typeform", "application/json", body, &[("typeform-signature", sig)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let typeform = app.lead(res["id"].as_str().expect("id")).await;
    assert_eq!(typeform["source"]["utm_source"], "facebook");
    assert_eq!(typeform["source"]["utm_campaign"], "spring_webinar");
    assert!(identities(&typeform).iter().any(|i| i.starts_with("email:")));

    // Jotform: multipart with the answers inside rawRequest. The same Ivan wrote through Tilda:
    // his message joins that lead.
    let (status, res) = post(
        &app,
        "jotform",
        "multipart/form-data; boundary=------------------------d74496d66958873e",
        fixture("jotform_multipart.txt"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["id"], tilda["id"]);
    let joined = app.lead(res["id"].as_str().expect("id")).await;
    let last = joined["interactions"].as_array().and_then(|i| i.last()).expect("interaction");
    assert!(last["text"].as_str().is_some_and(|t| t.contains("интеграция с 1С")), "{last}");

    // Elementor: fields[id][value|type], a national phone read in the form's region.
    let (status, res) =
        post(&app, "elementor", "application/x-www-form-urlencoded", fixture("elementor.txt"), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let elementor = app.lead(res["id"].as_str().expect("id")).await;
    assert_eq!(elementor["contact"]["name"], "María García");
    assert_eq!(identities(&elementor), ["email:maria.garcia@example.es", "phone:+34612345678"]);
    assert_eq!(elementor["interactions"][0]["text"], "Necesitamos una web nueva para la clínica.");

    // Generic multipart with Cyrillic text and a file part.
    let (status, res) = post(
        &app,
        "contact",
        "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        fixture("generic_multipart.txt"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let generic = app.lead(res["id"].as_str().expect("id")).await;
    assert_eq!(identities(&generic), ["email:ivan.petrov@example.com", "phone:+14155550132"]);

    assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 5);
}
both!(form_builders_payloads_become_leads);
