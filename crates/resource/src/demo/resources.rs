//! The resource catalogue: `test://static/resource/1..100` (odd numbers text, even numbers
//! blobs), its template, and the conformance suite's fixtures.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::ErrorData;
use rmcp::model::{Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

use super::media::TINY_PNG;

pub const RESOURCE_COUNT: u32 = 100;
pub const PAGE_SIZE: usize = 10;
const STATIC_PREFIX: &str = "test://static/resource/";
pub const WATCHED: &str = "test://watched-resource";

pub fn static_uri(id: u32) -> String {
    format!("{STATIC_PREFIX}{id}")
}

fn static_resource(id: u32) -> Resource {
    let mime = if id % 2 == 1 { "text/plain" } else { "application/octet-stream" };
    Resource::new(static_uri(id), format!("Resource {id}"))
        .with_description(format!("Static test resource number {id}"))
        .with_mime_type(mime)
}

/// Whether `uri` is one of the conformance suite's fixture resources.
pub fn is_fixture(uri: &str) -> bool {
    matches!(uri, "test://static-text" | "test://static-binary")
}

/// Every direct resource, in listing order.
pub fn catalogue() -> Vec<Resource> {
    let mut all: Vec<Resource> = (1..=RESOURCE_COUNT).map(static_resource).collect();
    all.push(
        Resource::new("test://static-text", "Static text")
            .with_description("A text resource for the conformance suite")
            .with_mime_type("text/plain"),
    );
    all.push(
        Resource::new("test://static-binary", "Static binary")
            .with_description("A binary (PNG) resource for the conformance suite")
            .with_mime_type("image/png"),
    );
    all.push(
        Resource::new(WATCHED, "Watched resource")
            .with_description("A resource that can be subscribed to")
            .with_mime_type("text/plain"),
    );
    all
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://static/resource/{id}", "Static resource")
            .with_description("A static resource by number, 1 to 100"),
        ResourceTemplate::new("test://template/{id}/data", "Template data")
            .with_description("JSON data for any id")
            .with_mime_type("application/json"),
    ]
}

/// Cursors are opaque to clients: base64 of the offset of the next page.
pub fn encode_cursor(offset: usize) -> String {
    STANDARD.encode(format!("offset:{offset}"))
}

pub fn decode_cursor(cursor: &str) -> Result<usize, ErrorData> {
    let invalid = || ErrorData::invalid_params("invalid cursor", Some(json!({ "cursor": cursor })));
    let decoded = STANDARD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let offset: usize = text.strip_prefix("offset:").and_then(|n| n.parse().ok()).ok_or_else(invalid)?;
    if offset >= catalogue().len() {
        return Err(invalid());
    }
    Ok(offset)
}

pub fn static_id(uri: &str) -> Option<u32> {
    let id: u32 = uri.strip_prefix(STATIC_PREFIX)?.parse().ok()?;
    (1..=RESOURCE_COUNT).contains(&id).then_some(id)
}

pub fn static_contents(id: u32) -> ResourceContents {
    let uri = static_uri(id);
    if id % 2 == 1 {
        ResourceContents::text(format!("Resource {id}: This is a plaintext resource"), uri)
    } else {
        ResourceContents::blob(STANDARD.encode(format!("Resource {id}: This is a base64 blob")), uri)
            .with_mime_type("application/octet-stream")
    }
}

/// The contents behind `uri`, or -32002 (resource not found).
pub fn read(uri: &str) -> Result<ResourceContents, ErrorData> {
    if let Some(id) = static_id(uri) {
        return Ok(static_contents(id));
    }
    match uri {
        "test://static-text" => {
            return Ok(ResourceContents::text("This is the content of the static text resource.", uri));
        }
        "test://static-binary" => return Ok(ResourceContents::blob(TINY_PNG, uri).with_mime_type("image/png")),
        WATCHED => return Ok(ResourceContents::text("The watched resource's current content.", uri)),
        _ => {}
    }
    if let Some(id) = uri.strip_prefix("test://template/").and_then(|rest| rest.strip_suffix("/data"))
        && !id.is_empty()
        && !id.contains('/')
    {
        let body = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
        return Ok(ResourceContents::text(body.to_string(), uri).with_mime_type("application/json"));
    }
    Err(ErrorData::resource_not_found(format!("resource not found: {uri}"), Some(json!({ "uri": uri }))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_invalid_params() {
        assert_eq!(decode_cursor(&encode_cursor(20)).unwrap(), 20);
        assert!(decode_cursor("not-base64!").is_err());
        assert!(decode_cursor(&STANDARD.encode("offset:99999")).is_err());
    }

    #[test]
    fn odd_resources_are_text_and_even_ones_blobs() {
        assert!(matches!(read("test://static/resource/1").unwrap(), ResourceContents::TextResourceContents { .. }));
        assert!(matches!(read("test://static/resource/2").unwrap(), ResourceContents::BlobResourceContents { .. }));
        assert_eq!(read("test://static/resource/101").unwrap_err().code.0, -32002);
        assert_eq!(read("test://template/7/extra/data").unwrap_err().code.0, -32002);
    }
}
