//! The Dify EE chart as data: per chart version, each component's image and whether it needs the
//! `-arm64` tag on Graviton nodes; and the `[dify]` settings that choose the chart and override
//! its images.
//!
//! Source of the 3.9.1 row: langgenius/dify-ee-terraform-aws, `docs/values.full-doc.en.yaml`
//! (annotated copy of the chart 3.9.1 `values.yaml`, generated 2026-04-23, commit 0685f1b) for
//! the repositories and tags, and `cloud/aws/scripts/4_generate_dify_helm.sh`
//! (`WATCHDOG_AMD64_ONLY_PATHS`, `CN_IMAGE_MIRROR_PREFIX`, commits 10584ca and 51cbe4f) for
//! which images are amd64-only under the plain tag and the China mirror. Summarised in
//! `../shared/reference/dify-ee-chart-3.9.1.md`.

use std::collections::BTreeMap;

use dify_stack_core::{Partition, SpecErrors};
use serde::{Deserialize, Serialize};

/// The official Dify Helm repository, which serves the Dify EE chart `dify` (3.x).
pub const DEFAULT_REPOSITORY: &str = "https://langgenius.github.io/dify-helm";
/// The chart version installed unless `[dify] chart_version` says otherwise: the one Dify
/// validated end to end on AWS (their deploy notes name 3.9.1 and 3.12.0).
pub const DEFAULT_CHART_VERSION: &str = "3.9.1";
/// The registry prefix Dify's generator uses for every `langgenius/*` image (and squid) in
/// China regions, where Docker Hub is not reachable (`CN_IMAGE_MIRROR_PREFIX`).
pub const CHINA_MIRROR: &str = "g-hsod9681-docker.pkg.coding.net/dify-artifact/dify";
/// The ALB idle timeout the Ingress gets unless configured: long streamed LLM responses outlive
/// the ALB's default 60 s (aws-samples/dify-self-hosted-on-aws PR #70 raised it for this reason).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 600;

/// The CPU architecture of the nodes the release runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Graviton (the profiles' node group).
    Arm64,
    /// x86_64.
    Amd64,
}

impl Arch {
    /// The architecture of an EKS AMI type (`AL2023_ARM_64_STANDARD` is arm64); `None` when
    /// unknown.
    pub fn of_ami_type(ami_type: &str) -> Option<Arch> {
        dify_stack_eks::spec::ami_is_arm(ami_type).map(|arm| if arm { Arch::Arm64 } else { Arch::Amd64 })
    }

    /// The OCI platform name (`arm64`, `amd64`).
    pub fn oci(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }
}

/// One image of the chart: the value path that sets it and its default reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentImage {
    /// The values path of the component (`enterprise`, `web.logoConfig`); the image is at
    /// `<path>.image.{repository,tag}`.
    pub path: &'static str,
    /// The chart's default repository (Docker Hub when it has no registry host).
    pub repository: &'static str,
    /// The chart's default tag.
    pub tag: &'static str,
    /// Amd64-only under the plain tag; a `<tag>-arm64` tag exists for Graviton.
    pub arm64_tag: bool,
    /// Runs in a default install (`web.logoConfig` runs only when enabled).
    pub runs_by_default: bool,
}

/// One chart version: its components' images and the plugin connector's helper images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartImages {
    /// The chart version.
    pub version: &'static str,
    /// Each component with an image.
    pub components: &'static [ComponentImage],
    /// The plugin connector's helper images (`plugin_connector.<key>`): full references, run
    /// by the plugin builds.
    pub helpers: &'static [(&'static str, &'static str)],
}

const fn image(path: &'static str, repository: &'static str, tag: &'static str, arm64_tag: bool) -> ComponentImage {
    ComponentImage { path, repository, tag, arm64_tag, runs_by_default: true }
}

/// The chart versions this library knows, newest last.
pub const CHARTS: &[ChartImages] = &[ChartImages {
    version: "3.9.1",
    components: &[
        image("api", "langgenius/dify-ee-api", "3.9.1", false),
        image("worker", "langgenius/dify-ee-api", "3.9.1", false),
        image("workerBeat", "langgenius/dify-ee-api", "3.9.1", false),
        image("web", "langgenius/dify-ee-web", "3.9.1", false),
        ComponentImage {
            path: "web.logoConfig",
            repository: "busybox",
            tag: "1.36.1",
            arm64_tag: true,
            runs_by_default: false,
        },
        image("sandbox", "langgenius/dify-ee-sandbox", "3.9.1", false),
        image("enterprise", "langgenius/dify-ee-enterprise", "3.9.1", true),
        image("enterpriseCollector", "langgenius/dify-ee-collector", "3.9.1", false),
        image("enterpriseAudit", "langgenius/dify-ee-audit", "3.9.1", true),
        image("enterpriseFrontend", "langgenius/dify-ee-enterprise-frontend", "3.9.1", false),
        image("ssrfProxy", "ubuntu/squid", "6.13-25.04_beta", false),
        image("unstructured", "downloads.unstructured.io/unstructured-io/unstructured-api", "0.0.70", false),
        image("plugin_daemon", "langgenius/dify-ee-plugin-daemon-serverless", "3.9.1", false),
        image("plugin_controller", "langgenius/dify-ee-plugin-crd", "3.9.1", true),
        image("plugin_connector", "langgenius/dify-ee-plugin-connector", "3.9.1", true),
        image("gateway", "langgenius/dify-ee-gateway", "3.9.1", true),
        image("plugin_manager", "langgenius/dify-ee-plugin-manager", "3.9.1", true),
    ],
    helpers: &[
        ("gatewayImage", "nginx:1.29.4-alpine"),
        ("shaderImage", "gcr.io/kaniko-project/executor:latest"),
        ("busyBoxImage", "busybox:latest"),
        ("awsCliImage", "amazon/aws-cli:latest"),
    ],
}];

/// The table row of a chart version.
pub fn chart_images(version: &str) -> Option<&'static ChartImages> {
    CHARTS.iter().find(|c| c.version == version)
}

/// An image set by config: repository, tag, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOverride {
    /// Repository (`registry/path`, or a Docker Hub `org/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// The plugin connector's helper images (full references), and the base images of its plugin
/// builds. Each defaults to the chart's; in China regions they must come from a mirror (Dify's
/// generator does not rewrite them: its README says to edit them by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConnectorImages {
    /// `plugin_connector.gatewayImage` (chart: `nginx:1.29.4-alpine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_image: Option<String>,
    /// `plugin_connector.shaderImage` (chart: `gcr.io/kaniko-project/executor:latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shader_image: Option<String>,
    /// `plugin_connector.busyBoxImage` (chart: `busybox:latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busybox_image: Option<String>,
    /// `plugin_connector.awsCliImage` (chart: `amazon/aws-cli:latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_cli_image: Option<String>,
    /// `plugin_connector.generatorConf`, verbatim (a YAML document as a string: the plugin build
    /// base images per Python version, `docker.io/langgenius/plugin-build-base-python:3.1x-secure`
    /// in the chart). Absent: the chart's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_conf: Option<String>,
}

impl PluginConnectorImages {
    /// `(values key, configured reference)` of each helper image set.
    fn helpers(&self) -> [(&'static str, Option<&String>); 4] {
        [
            ("gatewayImage", self.gateway_image.as_ref()),
            ("shaderImage", self.shader_image.as_ref()),
            ("busyBoxImage", self.busybox_image.as_ref()),
            ("awsCliImage", self.aws_cli_image.as_ref()),
        ]
    }
}

/// Dify EE on the stack (`[dify]`): where it is served, which chart, which images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DifySettings {
    /// The domain, e.g. `dify.example.com`: the hosts `console.`, `api.`, `app.`, `upload.`,
    /// `enterprise.`, `trigger.` under it. Dify EE needs DNS host names: without a domain the
    /// values have none and `install` refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// ARN of an ACM certificate for the domain and `*.domain` that you manage. Absent (the
    /// default): the platform node requests one, validated through Route 53.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    /// The public Route 53 hosted zone of the domain; looked up by name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// The chart version (default 3.9.1). A version without a row in [`CHARTS`] needs every
    /// component's image in `images`.
    #[serde(default = "default_chart_version")]
    pub chart_version: String,
    /// The chart repository (`https://` or `oci://`; a mirror in China regions).
    #[serde(default = "default_repository")]
    pub chart_repository: String,
    /// Per component (its values path: `enterprise`, `plugin_daemon`, ...), the image to run
    /// instead of the chart's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImageOverride>,
    /// The registry prefix replacing `langgenius/` (and serving `squid` for the SSRF proxy).
    /// Absent: Docker Hub, except in China regions where Dify's mirror ([`CHINA_MIRROR`]) is
    /// used; set `docker.io/langgenius` there to use Docker Hub anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_mirror: Option<String>,
    /// The plugin connector's helper images and build base images.
    #[serde(default, skip_serializing_if = "is_default")]
    pub plugin_connector: PluginConnectorImages,
    /// The ALB's idle timeout for the Ingress, in seconds (1-4000; default 600 so streamed LLM
    /// responses are not cut at the ALB's default 60 s).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u32,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn default_chart_version() -> String {
    DEFAULT_CHART_VERSION.to_owned()
}
fn default_repository() -> String {
    DEFAULT_REPOSITORY.to_owned()
}
fn default_idle_timeout() -> u32 {
    DEFAULT_IDLE_TIMEOUT_SECS
}

impl Default for DifySettings {
    fn default() -> Self {
        DifySettings {
            domain: None,
            certificate_arn: None,
            hosted_zone_id: None,
            chart_version: default_chart_version(),
            chart_repository: default_repository(),
            images: BTreeMap::new(),
            image_mirror: None,
            plugin_connector: PluginConnectorImages::default(),
            idle_timeout_secs: default_idle_timeout(),
        }
    }
}

/// One image the release runs, resolved for the nodes and the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// Where it is set: `<component>.image` or `plugin_connector.<helper key>`.
    pub path: String,
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// Values to set for it (`(path, value)`), none when the chart's default is right.
    pub values: Vec<(String, String)>,
}

impl ResolvedImage {
    /// `repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

impl DifySettings {
    /// Checks the chart version, the image overrides and the idle timeout; paths under `dify.`.
    pub fn validate(&self, errs: &mut SpecErrors) {
        if self.chart_version.trim().is_empty() {
            errs.push("dify.chart_version", "is empty", format!("e.g. {DEFAULT_CHART_VERSION}"));
        }
        if !self.chart_repository.starts_with("https://") && !self.chart_repository.starts_with("oci://") {
            errs.push(
                "dify.chart_repository",
                format!("{:?} is not an https:// or oci:// URL", self.chart_repository),
                format!("e.g. {DEFAULT_REPOSITORY}"),
            );
        }
        match chart_images(&self.chart_version) {
            Some(chart) => {
                for path in self.images.keys() {
                    if !chart.components.iter().any(|c| c.path == path) {
                        let known: Vec<&str> = chart.components.iter().map(|c| c.path).collect();
                        errs.push(
                            format!("dify.images.{path}"),
                            format!("chart {} has no component {path:?}", chart.version),
                            format!("one of {}", known.join(", ")),
                        );
                    }
                }
            }
            None => {
                // Without a table row nothing says which images need the arm64 tag: every
                // component that runs must be given, repository and tag.
                let latest = CHARTS.last().map(|c| c.version).unwrap_or(DEFAULT_CHART_VERSION);
                let template = CHARTS.last().map(|c| c.components).unwrap_or_default();
                let missing: Vec<&str> = template
                    .iter()
                    .filter(|c| c.runs_by_default)
                    .filter(|c| self.images.get(c.path).is_none_or(|o| o.repository.is_none() || o.tag.is_none()))
                    .map(|c| c.path)
                    .collect();
                if !missing.is_empty() {
                    let known: Vec<&str> = CHARTS.iter().map(|c| c.version).collect();
                    errs.push(
                        "dify.chart_version",
                        format!(
                            "chart {} is not one this version of dify-stack knows the images of (it knows {})",
                            self.chart_version,
                            known.join(", ")
                        ),
                        format!(
                            "use chart {latest}, or give repository and tag of every component in [dify.images.<path>] ({} missing: {})",
                            missing.len(),
                            missing.join(", ")
                        ),
                    );
                }
            }
        }
        for (path, o) in &self.images {
            if o.repository.is_none() && o.tag.is_none() {
                errs.push(format!("dify.images.{path}"), "sets neither repository nor tag", "set one or both");
            }
            for (field, v) in [("repository", &o.repository), ("tag", &o.tag)] {
                if v.as_ref().is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace)) {
                    errs.push(
                        format!("dify.images.{path}.{field}"),
                        format!("{v:?} is not valid"),
                        "no spaces, not empty",
                    );
                }
            }
        }
        if !(1..=4000).contains(&self.idle_timeout_secs) {
            // ALB attribute idle_timeout.timeout_seconds: 1-4000 (ELBv2 API reference,
            // LoadBalancerAttribute).
            errs.push(
                "dify.idle_timeout_secs",
                format!("{} is outside the ALB's 1-4000 s", self.idle_timeout_secs),
                "e.g. 600",
            );
        }
    }

    /// The mirror replacing `langgenius/` in `partition`: the configured one, Dify's in China.
    pub fn mirror(&self, partition: Partition) -> Option<String> {
        self.image_mirror
            .clone()
            .or_else(|| (partition == Partition::AwsCn).then(|| CHINA_MIRROR.to_owned()))
            .map(|m| m.trim_end_matches('/').to_owned())
            .filter(|m| m != "docker.io/langgenius" && m != "langgenius")
    }

    /// Every image the release runs on nodes of `arch` in `partition`, with the values that set
    /// it. Components that do not run by default (`web.logoConfig`) are left out.
    pub fn images(&self, arch: Arch, partition: Partition) -> Vec<ResolvedImage> {
        let chart = chart_images(&self.chart_version).or(CHARTS.last());
        let mirror = self.mirror(partition);
        let mut out = Vec::new();
        for c in chart.map(|c| c.components).unwrap_or_default().iter().filter(|c| c.runs_by_default) {
            let known = chart.is_some_and(|c| c.version == self.chart_version);
            let given = self.images.get(c.path);
            let mut values = Vec::new();
            let repository = match given.and_then(|o| o.repository.clone()) {
                Some(r) => Some(r),
                // Dify's generator: `langgenius/<name>` -> `<mirror>/<name>`; the SSRF proxy's
                // squid -> `<mirror>/squid`; other third-party images unchanged.
                None => mirror.as_ref().and_then(|m| match c.repository.strip_prefix("langgenius/") {
                    Some(name) => Some(format!("{m}/{name}")),
                    None if c.path == "ssrfProxy" => Some(format!("{m}/squid")),
                    None => None,
                }),
            };
            if let Some(r) = &repository {
                values.push((format!("{}.image.repository", c.path), r.clone()));
            }
            let tag = match given.and_then(|o| o.tag.clone()) {
                Some(t) => Some(t),
                None if known && arch == Arch::Arm64 && c.arm64_tag => Some(format!("{}-arm64", c.tag)),
                None => None,
            };
            if let Some(t) = &tag {
                values.push((format!("{}.image.tag", c.path), t.clone()));
            }
            out.push(ResolvedImage {
                path: format!("{}.image", c.path),
                repository: repository.unwrap_or_else(|| c.repository.to_owned()),
                tag: tag.unwrap_or_else(|| c.tag.to_owned()),
                values,
            });
        }
        let helpers = chart.map(|c| c.helpers).unwrap_or_default();
        for (key, given) in self.plugin_connector.helpers() {
            let Some(default) = helpers.iter().find(|(k, _)| *k == key).map(|(_, v)| *v) else { continue };
            let reference = given.cloned().unwrap_or_else(|| default.to_owned());
            let (repository, tag) = split_reference(&reference);
            out.push(ResolvedImage {
                path: format!("plugin_connector.{key}"),
                repository,
                tag,
                values: given.map(|g| vec![(format!("plugin_connector.{key}"), g.clone())]).unwrap_or_default(),
            });
        }
        out
    }
}

/// `repo:tag` -> (`repo`, `tag`), `latest` when untagged (a `:` in a registry host's port is not
/// a tag).
pub fn split_reference(reference: &str) -> (String, String) {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (reference[..name_start + i].to_owned(), reference[name_start + i + 1..].to_owned()),
        None => (reference.to_owned(), "latest".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_with(values: &[ResolvedImage], suffix: &str) -> Vec<String> {
        values
            .iter()
            .flat_map(|i| i.values.iter())
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    #[test]
    fn on_graviton_exactly_the_six_amd64_only_components_get_the_arm64_tag() {
        let images = DifySettings::default().images(Arch::Arm64, Partition::Aws);
        let tagged = paths_with(&images, ".image.tag");
        assert_eq!(
            tagged,
            [
                "enterprise.image.tag",
                "enterpriseAudit.image.tag",
                "plugin_controller.image.tag",
                "plugin_connector.image.tag",
                "gateway.image.tag",
                "plugin_manager.image.tag"
            ]
        );
        assert!(images.iter().flat_map(|i| &i.values).all(|(k, v)| !k.ends_with(".tag") || v == "3.9.1-arm64"));
        assert!(paths_with(&images, ".repository").is_empty(), "Docker Hub outside China");
        // web.logoConfig runs only when enabled: not an image of the release.
        assert!(!images.iter().any(|i| i.path.starts_with("web.logoConfig")));
        // x86_64 nodes: the chart's own tags.
        let amd = DifySettings::default().images(Arch::Amd64, Partition::Aws);
        assert!(amd.iter().all(|i| i.values.is_empty()), "{amd:?}");
        assert!(amd.iter().any(|i| i.reference() == "langgenius/dify-ee-enterprise:3.9.1"));
    }

    #[test]
    fn china_takes_dify_images_and_squid_from_the_mirror_and_leaves_other_third_party_images() {
        let images = DifySettings::default().images(Arch::Arm64, Partition::AwsCn);
        let by_path = |p: &str| images.iter().find(|i| i.path == p).unwrap().reference();
        assert_eq!(by_path("api.image"), format!("{CHINA_MIRROR}/dify-ee-api:3.9.1"));
        assert_eq!(by_path("enterprise.image"), format!("{CHINA_MIRROR}/dify-ee-enterprise:3.9.1-arm64"));
        assert_eq!(by_path("ssrfProxy.image"), format!("{CHINA_MIRROR}/squid:6.13-25.04_beta"));
        assert_eq!(by_path("unstructured.image"), "downloads.unstructured.io/unstructured-io/unstructured-api:0.0.70");
        // A configured mirror wins; Docker Hub can be chosen explicitly.
        let mut s = DifySettings { image_mirror: Some("mirror.example.cn/dify/".into()), ..DifySettings::default() };
        assert_eq!(s.images(Arch::Arm64, Partition::AwsCn)[0].repository, "mirror.example.cn/dify/dify-ee-api");
        s.image_mirror = Some("docker.io/langgenius".into());
        assert_eq!(s.images(Arch::Arm64, Partition::AwsCn)[0].repository, "langgenius/dify-ee-api");
    }

    #[test]
    fn overrides_win_and_an_unknown_chart_needs_every_image() {
        let mut s = DifySettings::default();
        s.images.insert("enterprise".into(), ImageOverride { repository: None, tag: Some("3.9.1-custom".into()) });
        s.plugin_connector.busybox_image = Some("mirror.example.com/busybox:1.36".into());
        let images = s.images(Arch::Arm64, Partition::Aws);
        let enterprise = images.iter().find(|i| i.path == "enterprise.image").unwrap();
        assert_eq!(enterprise.values, [("enterprise.image.tag".to_owned(), "3.9.1-custom".to_owned())]);
        let busybox = images.iter().find(|i| i.path == "plugin_connector.busyBoxImage").unwrap();
        assert_eq!((busybox.repository.as_str(), busybox.tag.as_str()), ("mirror.example.com/busybox", "1.36"));

        let mut errs = SpecErrors::new();
        s.validate(&mut errs);
        assert!(errs.is_empty(), "{errs}");

        s.chart_version = "3.12.0".into();
        let mut errs = SpecErrors::new();
        s.validate(&mut errs);
        let text = errs.to_string();
        assert!(text.contains("dify.chart_version") && text.contains("3.12.0"), "{text}");
        assert!(text.contains("enterpriseAudit") && text.contains("use chart 3.9.1"), "{text}");
        for c in CHARTS[0].components {
            s.images.insert(
                c.path.into(),
                ImageOverride { repository: Some(c.repository.into()), tag: Some("3.12.0".into()) },
            );
        }
        let mut errs = SpecErrors::new();
        s.validate(&mut errs);
        assert!(errs.is_empty(), "every image given: {errs}");
        // No table row: no arm64 guess, the given tags as they are.
        assert!(s.images(Arch::Arm64, Partition::Aws).iter().all(|i| !i.tag.ends_with("-arm64")));

        let mut s = DifySettings::default();
        s.images.insert("enterprize".into(), ImageOverride { repository: None, tag: Some("x".into()) });
        s.idle_timeout_secs = 0;
        let mut errs = SpecErrors::new();
        s.validate(&mut errs);
        let text = errs.to_string();
        assert!(text.contains("dify.images.enterprize") && text.contains("dify.idle_timeout_secs"), "{text}");
    }

    #[test]
    fn references_split_at_the_tag_not_at_a_registry_port() {
        assert_eq!(split_reference("nginx:1.29.4-alpine"), ("nginx".into(), "1.29.4-alpine".into()));
        assert_eq!(split_reference("localhost:5000/busybox"), ("localhost:5000/busybox".into(), "latest".into()));
        assert_eq!(split_reference("r.example:443/a/b:1"), ("r.example:443/a/b".into(), "1".into()));
    }
}
