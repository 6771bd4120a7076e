//! Generates the context of tauri.conf.json and the permissions of the app's own commands: a
//! command not listed here cannot be called from the UI.

fn main() {
    let commands: &[&str] = &include!("src/commands.list");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri build step");
}
