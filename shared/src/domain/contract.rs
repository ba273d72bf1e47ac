use serde::{Deserialize, Serialize};

use super::files::FileInput;
use super::json::StrictJson;

/// The generator's JSON output contract (the seeds' `/generate` result): project metadata plus
/// `templateFiles` and `files`, each `{path, content}`. `files` are applied after
/// `templateFiles`, so a path in both takes its `files` content.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorOutput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, alias = "tech_stack")]
    pub tech_stack: Option<Vec<String>>,
    /// Free-form, but with unique keys (see [`StrictJson`]).
    #[serde(default)]
    pub metadata: Option<StrictJson>,
    #[serde(default)]
    pub template_files: Vec<FileInput>,
    #[serde(default)]
    pub files: Vec<FileInput>,
}

impl GeneratorOutput {
    /// All files, template files first; a later entry for the same path replaces an earlier one.
    pub fn merged_files(&self) -> Vec<FileInput> {
        let mut order: Vec<FileInput> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for f in self.template_files.iter().chain(self.files.iter()) {
            match index.get(&f.path) {
                Some(&i) => order[i] = f.clone(),
                None => {
                    index.insert(f.path.clone(), order.len());
                    order.push(f.clone());
                }
            }
        }
        order
    }

    /// The metadata Kiln keeps with a version (everything but the files).
    pub fn metadata_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "slug": self.slug,
            "description": self.description,
            "techStack": self.tech_stack,
            "metadata": self.metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_template_files() {
        let out: GeneratorOutput = serde_json::from_str(
            r#"{"name":"x","tech_stack":["react"],
                "templateFiles":[{"path":"a","content":"1"},{"path":"b","content":"2"}],
                "files":[{"path":"a","content":"3"}]}"#,
        )
        .unwrap();
        let merged = out.merged_files();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].content, "3");
        assert_eq!(out.tech_stack.as_deref(), Some(&["react".to_owned()][..]));
    }
}
