//! A model's own Jinja chat template, rendered with minijinja for prompts that offer tools:
//! llama.cpp's template function knows the common formats but renders no tool definitions,
//! and tool-trained models (Qwen, Hermes, Llama 3.1+) call tools well only when their
//! template has described the tools in its own words.
//!
//! The template sees each turn's content as a placeholder (see `prompt.rs`), and whatever it
//! serialises with `tojson` (the tool definitions) comes back marked as caller text, so no
//! byte a caller wrote is read as a special token.

use minijinja::value::Value;
use minijinja::{context, Environment, Error, ErrorKind};
use outcrop_types::{ToolDefinition, Turn};

/// Marks the start and end of text a template serialised (private-use code points, which no
/// template writes).
pub const LITERAL_OPEN: char = '\u{E002}';
pub const LITERAL_CLOSE: char = '\u{E003}';

const NAME: &str = "chat";

/// A parsed chat template.
pub struct JinjaTemplate {
    env: Environment<'static>,
}

impl JinjaTemplate {
    /// Parses a template that renders tool definitions; `None` for one that does not mention
    /// `tools` (the prompt then describes them in the system turn) or does not parse.
    pub fn with_tools(source: &str) -> Option<Self> {
        if !source.contains("tools") {
            return None;
        }
        let mut env = Environment::new();
        // As transformers renders chat templates.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        match env.add_template_owned(NAME, source.to_owned()) {
            Ok(()) => Some(JinjaTemplate { env }),
            Err(e) => {
                tracing::warn!(error = %e, "the model's chat template does not parse; tools are described in the system turn");
                None
            }
        }
    }

    /// Renders `turns` (as messages whose content is `content(i)`) and the tools, with the
    /// assistant's turn opened.
    pub fn render(
        &self,
        turns: &[Turn],
        content: impl Fn(usize) -> String,
        tools: &[ToolDefinition],
    ) -> Result<String, Error> {
        let messages: Vec<Value> = turns
            .iter()
            .enumerate()
            .map(|(i, t)| context! { role => t.role.as_str(), content => content(i) })
            .collect();
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let parameters: serde_json::Value =
                    serde_json::from_str(&t.parameters).unwrap_or_default();
                context! {
                    type => "function",
                    function => context! {
                        name => t.name,
                        description => t.description,
                        parameters => Value::from_serialize(&parameters),
                    },
                }
            })
            .collect();
        self.env.get_template(NAME)?.render(context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => "",
            eos_token => "",
        })
    }
}

/// `tojson` as transformers defines it (`json.dumps`: `", "` and `": "` separators, no HTML
/// escaping), its output marked as caller text.
fn tojson(value: Value) -> Result<String, Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonStyle);
    serde::Serialize::serialize(&value, &mut ser)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let json = String::from_utf8(out)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    Ok(format!("{LITERAL_OPEN}{json}{LITERAL_CLOSE}"))
}

/// serde_json's compact output with Python's default separators.
struct PythonStyle;

impl serde_json::ser::Formatter for PythonStyle {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcrop_types::Role;

    /// The part of Qwen2.5's template that describes tools (abridged).
    const QWEN: &str = r#"{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen.' }}{%- endif %}{{- "\n<tools>" }}{%- for tool in tools %}{{- "\n" }}{{- tool | tojson }}{%- endfor %}{{- "\n</tools><|im_end|>\n" }}{%- endif %}{%- for message in messages %}{%- if message.role != "system" %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#;

    #[test]
    fn tools_are_rendered_as_marked_json() {
        let t = JinjaTemplate::with_tools(QWEN).unwrap();
        let turns = [Turn::new(Role::System, "S"), Turn::new(Role::User, "U")];
        let tools = [ToolDefinition {
            name: "time".into(),
            description: "The <time>.".into(),
            parameters: r#"{"type":"object","properties":{}}"#.into(),
        }];
        let out = t.render(&turns, |i| format!("[{i}]"), &tools).unwrap();
        assert_eq!(
            out,
            format!(
                "<|im_start|>system\n[0]\n<tools>\n{LITERAL_OPEN}{}{LITERAL_CLOSE}\n</tools><|im_end|>\n<|im_start|>user\n[1]<|im_end|>\n<|im_start|>assistant\n",
                r#"{"type": "function", "function": {"name": "time", "description": "The <time>.", "parameters": {"properties": {}, "type": "object"}}}"#
            )
        );
    }

    #[test]
    fn templates_without_tools_or_that_do_not_parse_are_not_used() {
        assert!(JinjaTemplate::with_tools("{{ messages }}").is_none());
        assert!(JinjaTemplate::with_tools("{% for tools in %}").is_none());
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let t = JinjaTemplate::with_tools("{{ raise_exception('no tools here') }}").unwrap();
        let err = t.render(&[], |_| String::new(), &[]).unwrap_err();
        assert!(err.to_string().contains("no tools here"), "{err}");
    }
}
