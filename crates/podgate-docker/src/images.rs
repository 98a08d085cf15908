//! Images: found by name only (never by an id or id prefix), pulled from allowed registries only.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, CreateImageOptionsBuilder};
use futures_util::StreamExt as _;
use podgate_runtime::{Error, Result};
use podgate_types::image_ref::{ImageRef, registry_allowed};

use crate::errors::map_create_error;
use crate::errors::{engine_error, is_not_found};
use crate::{DockerDriver, LABEL_INSTANCE};

impl DockerDriver {
    /// Creates a container named `name` from the image `image` names, pulling it first when the
    /// engine has no image of that name. The container is created from the image's id, found by
    /// its name only: the engine would also take an id or id prefix for a name, which could
    /// reach an image the caller was never given (another user's snapshot).
    pub(crate) async fn create_pulling(
        &self,
        name: &str,
        image: &str,
        disk: Option<u64>,
        mut body: ContainerCreateBody,
    ) -> Result<()> {
        let reference = ImageRef::parse(image).map_err(Error::InvalidSpec)?;
        let id = match self.local_image(&reference).await? {
            Some(id) => id,
            None => {
                self.pull(&reference, image).await?;
                self.local_image(&reference).await?.ok_or_else(|| Error::ImageUnavailable {
                    image: image.to_string(),
                    reason: "the registry has no image of that name".into(),
                })?
            }
        };
        if let Some(opt) = self.storage_opt(disk, &id).await {
            body.host_config.get_or_insert_default().storage_opt = Some(opt);
        }
        body.image = Some(id);
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        self.docker.create_container(Some(opts), body).await.map(|_| ()).map_err(|e| map_create_error(e, image))
    }

    /// The id of the local image `reference` names, if the engine lists that name for it.
    pub(crate) async fn local_image(&self, reference: &ImageRef) -> Result<Option<String>> {
        let lookup = reference.familiar_digested().or_else(|| reference.familiar_tagged()).unwrap_or_default();
        match self.docker.inspect_image(&lookup).await {
            Ok(img) => {
                let named = reference.names_one_of(
                    img.repo_tags.as_deref().unwrap_or_default(),
                    img.repo_digests.as_deref().unwrap_or_default(),
                );
                Ok(if named { img.id } else { None })
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::Unavailable(engine_error(&e))),
        }
    }

    /// Pulls `reference` from its registry, if the admin allows that registry.
    pub(crate) async fn pull(&self, reference: &ImageRef, image: &str) -> Result<()> {
        if !registry_allowed(&self.cfg.pull_registries, &reference.registry) {
            return Err(Error::ImageUnavailable {
                image: image.to_string(),
                reason: format!(
                    "the engine has no image of that name, and registry {} is not one this server pulls from",
                    reference.registry
                ),
            });
        }
        let opts = CreateImageOptionsBuilder::new().from_image(&reference.pull_reference()).build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| Error::ImageUnavailable { image: image.to_string(), reason: engine_error(&e) })?;
        }
        Ok(())
    }

    /// Writes `image` as a docker-save archive to `dest`.
    pub(crate) async fn save_archive(&self, image: &str, dest: &Path) -> Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let mut file =
            tokio::fs::File::create(dest).await.map_err(|e| Error::Unavailable(format!("{}: {e}", dest.display())))?;
        let mut stream = self.docker.export_image(image);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) if is_not_found(&e) => return Err(Error::NotFound(image.to_string())),
                Err(e) => return Err(Error::Unavailable(engine_error(&e))),
            };
            file.write_all(&chunk).await.map_err(|e| Error::Unavailable(format!("{}: {e}", dest.display())))?;
        }
        file.flush().await.map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Loads the one untagged image of the archive `src` and tags it `image`; one with ONBUILD
    /// triggers is refused and removed.
    pub(crate) async fn load_archive(&self, src: &Path, image: &str) -> Result<u64> {
        let file =
            tokio::fs::File::open(src).await.map_err(|e| Error::Unavailable(format!("{}: {e}", src.display())))?;
        let body = tokio_util::io::ReaderStream::new(file);
        let opts = bollard::query_parameters::ImportImageOptionsBuilder::new().quiet(true).build();
        let mut stream = self.docker.import_image_stream(opts, body, None);
        let mut loaded = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let text = info.stream.unwrap_or_default();
                    if let Some(id) = text.trim().strip_prefix("Loaded image ID: ") {
                        loaded = Some(id.to_string());
                    }
                }
                Err(e) => {
                    return Err(Error::InvalidSpec(format!("the engine refused the image: {}", engine_error(&e))));
                }
            }
        }
        let Some(id) = loaded else {
            return Err(Error::InvalidSpec("the engine loaded no untagged image from the archive".into()));
        };
        // ONBUILD triggers would run in whatever build names this image in its FROM (an admin's
        // template build): an imported image may not carry any.
        let inspected = self.docker.inspect_image(&id).await.map_err(|e| Error::Unavailable(engine_error(&e)))?;
        let size = inspected.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        if inspected.config.and_then(|c| c.on_build).is_some_and(|t| !t.is_empty()) {
            let _ = self.docker.remove_image(&id, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
            return Err(Error::InvalidSpec(
                "the image has ONBUILD triggers, which imported images may not carry".into(),
            ));
        }
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let opts = bollard::query_parameters::TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        if let Err(e) = self.docker.tag_image(&id, Some(opts)).await {
            let _ = self.docker.remove_image(&id, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
            return Err(Error::Unavailable(engine_error(&e)));
        }
        Ok(size)
    }

    /// Builds `image` from the build context `context` (a tar with a Dockerfile); the log's end.
    pub(crate) async fn build_from(&self, context: &Path, image: &str) -> Result<String> {
        let file = tokio::fs::File::open(context)
            .await
            .map_err(|e| Error::Unavailable(format!("{}: {e}", context.display())))?;
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        let labels = HashMap::from([(LABEL_INSTANCE.to_string(), self.cfg.instance.clone())]);
        let opts = bollard::query_parameters::BuildImageOptionsBuilder::new()
            .t(image)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .build();
        let mut stream = self.docker.build_image(opts, None, Some(body));
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        log.push_str(&s);
                    }
                }
                Err(e) => {
                    let tail: String =
                        log.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                    return Err(Error::InvalidSpec(format!("the build failed: {}\n{tail}", engine_error(&e))));
                }
            }
        }
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        Ok(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}
