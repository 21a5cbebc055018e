//! Prompts and argument completion.

use std::collections::HashMap;

use rmcp::ErrorData;
use rmcp::model::{ContentBlock, GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::{Map, Value, json};

use super::media::TINY_PNG;
use super::resources::{RESOURCE_COUNT, read, static_id, static_uri};

const STYLES: [&str; 4] = ["casual", "formal", "technical", "friendly"];
const TEMPERATURES: [&str; 4] = ["0", "0.5", "0.7", "1.0"];

fn arg(name: &str, description: &str, required: bool) -> PromptArgument {
    PromptArgument::new(name).with_description(description).with_required(required)
}

pub fn list() -> Vec<Prompt> {
    let no_args: Option<Vec<PromptArgument>> = None;
    vec![
        Prompt::new("simple_prompt", Some("A prompt without arguments"), no_args.clone()),
        Prompt::new(
            "complex_prompt",
            Some("A prompt with arguments"),
            Some(vec![arg("temperature", "Temperature setting", true), arg("style", "Output style", false)]),
        ),
        Prompt::new(
            "resource_prompt",
            Some("A prompt that includes an embedded resource reference"),
            Some(vec![arg("resourceId", "Resource ID to include (1-100)", true)]),
        ),
        Prompt::new("test_simple_prompt", Some("A simple prompt without arguments"), no_args.clone()),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with required arguments"),
            Some(vec![arg("arg1", "First test argument", true), arg("arg2", "Second test argument", true)]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that embeds a resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed", true)]),
        ),
        Prompt::new("test_prompt_with_image", Some("A prompt with image content"), no_args),
    ]
}

fn embedded(contents: rmcp::model::ResourceContents) -> ContentBlock {
    ContentBlock::resource(contents)
}

fn image() -> ContentBlock {
    ContentBlock::image(TINY_PNG, "image/png")
}

/// Renders a prompt, or invalid params for an unknown prompt or missing required argument.
/// Whether `name` is one of the conformance suite's fixture prompts.
pub fn is_fixture(name: &str) -> bool {
    name.starts_with("test_")
}

pub fn get(name: &str, arguments: Option<&Map<String, Value>>) -> Result<GetPromptResult, ErrorData> {
    let prompt = list()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ErrorData::invalid_params(format!("unknown prompt: {name}"), Some(json!({ "name": name }))))?;
    let values: HashMap<&str, String> = arguments
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
        .collect();
    for required in prompt.arguments.iter().flatten().filter(|a| a.required == Some(true)) {
        if !values.contains_key(required.name.as_str()) {
            return Err(ErrorData::invalid_params(
                format!("missing required argument `{}` for prompt {name}", required.name),
                Some(json!({ "argument": required.name })),
            ));
        }
    }
    let value = |k: &str| values.get(k).cloned().unwrap_or_default();
    let messages = match name {
        "simple_prompt" => vec![PromptMessage::new_text(Role::User, "This is a simple prompt without arguments.")],
        "complex_prompt" => vec![
            PromptMessage::new_text(
                Role::User,
                format!(
                    "This is a complex prompt with arguments: temperature={}, style={}",
                    value("temperature"),
                    values.get("style").map(String::as_str).unwrap_or("(none)")
                ),
            ),
            PromptMessage::new_text(
                Role::Assistant,
                "I understand. You've provided a complex prompt with temperature and style arguments. How would you like me to proceed?",
            ),
            PromptMessage::new(Role::User, image()),
        ],
        "resource_prompt" => {
            let id = value("resourceId").parse::<u32>().ok().and_then(|id| static_id(&static_uri(id))).ok_or_else(|| {
                ErrorData::invalid_params(format!("resourceId must be an integer from 1 to {RESOURCE_COUNT}"), None)
            })?;
            vec![
                PromptMessage::new_text(
                    Role::User,
                    format!("This prompt includes Resource {id}. Please analyze the following resource:"),
                ),
                PromptMessage::new(Role::User, embedded(read(&static_uri(id))?)),
            ]
        }
        "test_simple_prompt" => vec![PromptMessage::new_text(Role::User, "This is a simple prompt for testing.")],
        "test_prompt_with_arguments" => vec![PromptMessage::new_text(
            Role::User,
            format!("Prompt with arguments: arg1='{}', arg2='{}'", value("arg1"), value("arg2")),
        )],
        "test_prompt_with_embedded_resource" => vec![
            PromptMessage::new(
                Role::User,
                embedded(rmcp::model::ResourceContents::text("Embedded resource content for testing.", value("resourceUri"))),
            ),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ],
        "test_prompt_with_image" => {
            vec![PromptMessage::new(Role::User, image()), PromptMessage::new_text(Role::User, "Please analyze the image above.")]
        }
        _ => unreachable!("every listed prompt is rendered above"),
    };
    Ok(GetPromptResult::new(messages).with_description(prompt.description.unwrap_or_default()))
}

/// Completion candidates for a prompt argument.
pub fn complete_prompt_argument(prompt: &str, argument: &str, prefix: &str) -> Vec<String> {
    let candidates: Vec<String> = match (prompt, argument) {
        (_, "style") => STYLES.iter().map(|s| (*s).to_owned()).collect(),
        (_, "temperature") => TEMPERATURES.iter().map(|s| (*s).to_owned()).collect(),
        (_, "resourceId") | (_, "id") => (1..=RESOURCE_COUNT).map(|n| n.to_string()).collect(),
        ("test_prompt_with_arguments", _) => ["paris", "park", "party"].iter().map(|s| (*s).to_owned()).collect(),
        _ => vec![],
    };
    candidates.into_iter().filter(|c| c.starts_with(prefix)).collect()
}
