// The objects a DataSync owns (config/datasync_job.hpp): claim and Job names, the label value,
// the volume size, the PersistentVolumeClaim and the populate Job (ownership, labels, the
// agent's command line, volumes, Secret by reference, security context).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "config/datasync.hpp"
#include "config/datasync_job.hpp"
#include "config/job_builder.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::config;

namespace {

const std::string k_checksum = "sha256:" + std::string(64, 'c');

datasync_vm make_vm(std::string name, datasync_source_type type, std::string url) {
  datasync_vm vm;
  vm.name = std::move(name);
  vm.source_type = type;
  vm.url = std::move(url);
  return vm;
}

datasync make_ds() {
  datasync ds;
  ds.metadata.name = "ws-v1";
  ds.metadata.namespace_ = "team-a";
  ds.metadata.uid = "uid-42";
  ds.metadata.generation = 3;
  ds.spec.workspace_id = "ws";
  ds.spec.vms.push_back(
      make_vm("base", datasync_source_type::http, "https://images.example.com/base.qcow2"));
  ds.spec.vms.push_back(
      make_vm("golden", datasync_source_type::pvc, "pvc://golden-images/disk.img"));
  return ds;
}

const json::value& at(const json::value& v, std::initializer_list<std::string_view> path) {
  static const json::value null;
  const json::value* p = v.at_path(path);
  EXPECT_NE(p, nullptr) << json::dump(v);
  return p ? *p : null;
}

json::value claim(const datasync& ds, const datasync_vm& vm) {
  auto c = build_datasync_claim(ds, vm);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().to_string());
  return c ? *c : json::value();
}

json::value populate_job(const datasync& ds, const datasync_vm& vm,
                         const populate_settings& s = {}) {
  auto j = build_populate_job(ds, vm, s);
  EXPECT_TRUE(j.has_value()) << (j ? "" : j.error().to_string());
  return j ? *j : json::value();
}

const json::value& pod_spec(const json::value& job) {
  return at(job, {"spec", "template", "spec"});
}

const json::value& container_of(const json::value& job) {
  static const json::value null;
  const auto& containers = at(job, {"spec", "template", "spec", "containers"});
  if (!containers.is_array() || containers.as_array().size() != 1) {
    ADD_FAILURE() << "want one container: " << json::dump(job);
    return null;
  }
  return containers.as_array()[0];
}

std::vector<std::string> strings(const json::value& v) {
  std::vector<std::string> out;
  if (!v.is_array()) {
    ADD_FAILURE() << "not an array: " << json::dump(v);
    return out;
  }
  for (const auto& s : v.as_array())
    out.push_back(s.as_string());
  return out;
}

const json::value* named(const json::value& list, std::string_view name) {
  if (!list.is_array()) return nullptr;
  for (const auto& e : list.as_array())
    if (e.get_string("name") == name) return &e;
  return nullptr;
}

bool is_dns_label(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return s.front() != '-' && s.back() != '-';
}

bool is_hex(const std::string& s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return !s.empty();
}

json::value parsed(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Names

TEST(DatasyncClaimName, IsDatasyncDashVm) {
  EXPECT_EQ(datasync_claim_name("ws-v1", "base"), "ws-v1-base");
  EXPECT_EQ(datasync_claim_name("ws.v1", "base"), "ws.v1-base") << "a subdomain may have dots";
  // Exactly 253 characters: kept as is.
  std::string ds(248, 'a');
  EXPECT_EQ(datasync_claim_name(ds, "base"), ds + "-base");
  EXPECT_EQ(datasync_claim_name(ds, "base").size(), 253U);
}

TEST(DatasyncClaimName, LongNamesAreHashedDownTo253) {
  std::string ds(250, 'a');
  std::string n = datasync_claim_name(ds, "base");
  EXPECT_LE(n.size(), 253U);
  EXPECT_EQ(n.size(), 253U);
  EXPECT_EQ(n, datasync_claim_name(ds, "base")) << "stable";
  EXPECT_EQ(n.substr(0, 236), std::string(236, 'a'));
  EXPECT_EQ(n[236], '-');
  EXPECT_TRUE(is_hex(n.substr(237))) << n;
  EXPECT_EQ(n.substr(237).size(), 16U);
  // Names that share the cut prefix differ by the hash.
  EXPECT_NE(datasync_claim_name(ds, "data"), n);
  EXPECT_NE(datasync_claim_name(ds + "b", "base"), n);
  // A '-' or '.' at the cut is not left before the hash's '-'.
  std::string dashed = std::string(235, 'a') + "-" + std::string(30, 'b');
  std::string d = datasync_claim_name(dashed, "base");
  EXPECT_LE(d.size(), 253U);
  EXPECT_EQ(d.substr(0, 236), std::string(235, 'a') + "-");
  EXPECT_TRUE(is_hex(d.substr(236))) << d;
  EXPECT_EQ(d.find("--"), std::string::npos) << d;
  std::string dotted = std::string(234, 'a') + ".." + std::string(30, 'b');
  std::string e = datasync_claim_name(dotted, "base");
  EXPECT_EQ(e.substr(0, 235), std::string(234, 'a') + "-");
  EXPECT_EQ(e.find('.'), std::string::npos) << e;
}

TEST(DatasyncJobName, IsADnsLabel) {
  EXPECT_EQ(datasync_job_name("ws-v1", "base", 3, 0), "ws-v1-base-3-0");
  EXPECT_EQ(datasync_job_name("ws-v1", "base", 12, 2), "ws-v1-base-12-2");
  // Retries and generations never collide.
  std::set<std::string> names;
  for (int64_t gen = 1; gen <= 3; ++gen)
    for (int64_t retry = 0; retry <= 3; ++retry)
      names.insert(datasync_job_name("ws-v1", "base", gen, retry));
  EXPECT_EQ(names.size(), 12U);
}

TEST(DatasyncJobName, LongOrDottedNamesAreHashed) {
  std::string ds(60, 'w');
  std::string n = datasync_job_name(ds, "base", 3, 0);
  EXPECT_TRUE(is_dns_label(n)) << n;
  EXPECT_LE(n.size(), 63U);
  EXPECT_EQ(n, datasync_job_name(ds, "base", 3, 0)) << "stable";
  EXPECT_EQ(n, job_name(ds + "-base-3-0")) << "config::job_name's rule";
  // The suffix is cut off the slug; the hash keeps the retries apart.
  EXPECT_NE(datasync_job_name(ds, "base", 3, 1), n);
  EXPECT_NE(datasync_job_name(ds, "base", 4, 0), n);
  EXPECT_NE(datasync_job_name(ds, "data", 3, 0), n);

  std::string very_long(253, 'x');
  std::string v = datasync_job_name(very_long, std::string(63, 'y'), 1234567, 99);
  EXPECT_TRUE(is_dns_label(v)) << v;

  std::string d = datasync_job_name("ws.v1", "base", 1, 0);
  EXPECT_TRUE(is_dns_label(d)) << d;
  EXPECT_NE(d, datasync_job_name("ws-v1", "base", 1, 0));
}

TEST(DatasyncLabelValue, NameOrHashedForm) {
  EXPECT_EQ(datasync_label_value("ws-v1"), "ws-v1");
  EXPECT_EQ(datasync_label_value("ws.v1"), "ws.v1") << "dots are fine in label values";
  EXPECT_EQ(datasync_label_value(std::string(63, 'a')), std::string(63, 'a'));
  std::string long_name(64, 'a');
  std::string v = datasync_label_value(long_name);
  EXPECT_LE(v.size(), 63U);
  EXPECT_TRUE(is_dns_label(v)) << v;
  EXPECT_EQ(v, job_name(long_name));
  EXPECT_EQ(v, datasync_label_value(long_name)) << "stable";
}

// ---------------------------------------------------------------------------------------------
// Volume size

TEST(DatasyncVolumeSize, StorageSizeWins) {
  auto ds = make_ds();
  ds.spec.storage.size = "20Gi";
  ds.spec.storage.size_bytes = int64_t{20} << 30;
  auto vm = ds.spec.vms[0];
  vm.size = int64_t{1} << 30;
  EXPECT_EQ(datasync_volume_size(ds.spec, vm), "20Gi");
}

TEST(DatasyncVolumeSize, VmSizePlusTenPercentInMiB) {
  auto ds = make_ds();
  auto vm = ds.spec.vms[0];
  vm.size = int64_t{1} << 30;  // 1 GiB = 1024 MiB, + 102.4 → 1127
  EXPECT_EQ(datasync_volume_size(ds.spec, vm), "1127Mi");
  vm.size = int64_t{10} << 20;  // 10 MiB → 11 MiB
  EXPECT_EQ(datasync_volume_size(ds.spec, vm), "11Mi");
  vm.size = int64_t{100} << 30;  // 100 GiB = 102400 MiB → 112640
  EXPECT_EQ(datasync_volume_size(ds.spec, vm), "112640Mi");
  vm.size = int64_t{1} << 62;  // no overflow
  auto huge = datasync_volume_size(ds.spec, vm);
  EXPECT_EQ(huge.substr(huge.size() - 2), "Mi");
  EXPECT_GT(std::stoll(huge.substr(0, huge.size() - 2)), (int64_t{1} << 42));
}

TEST(DatasyncVolumeSize, DefaultWithoutAnySize) {
  auto ds = make_ds();
  auto vm = ds.spec.vms[0];
  EXPECT_EQ(datasync_volume_size(ds.spec, vm), "10Gi");
  EXPECT_EQ(std::string(k_default_volume_size), "10Gi");
  vm.size = 0;
  EXPECT_EQ(datasync_volume_size(ds.spec, vm), "10Gi");
}

// ---------------------------------------------------------------------------------------------
// The claim

TEST(DatasyncClaim, MetadataOwnerAndLabels) {
  auto ds = make_ds();
  auto c = claim(ds, ds.spec.vms[0]);
  EXPECT_EQ(c.get_string("apiVersion"), "v1");
  EXPECT_EQ(c.get_string("kind"), "PersistentVolumeClaim");
  EXPECT_EQ(at(c, {"metadata", "name"}).as_string(), "ws-v1-base");
  EXPECT_EQ(at(c, {"metadata", "namespace"}).as_string(), "team-a");
  EXPECT_EQ(at(c, {"metadata", "labels"}),
            parsed(R"({"app.kubernetes.io/managed-by":"tidesync","tidesync.io/datasync":"ws-v1",
                       "tidesync.io/datasync-vm":"base","tidesync.io/workspace":"ws"})"));
  const auto& owners = at(c, {"metadata", "ownerReferences"});
  ASSERT_TRUE(owners.is_array());
  ASSERT_EQ(owners.as_array().size(), 1U);
  EXPECT_EQ(owners.as_array()[0],
            parsed(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"DataSync","name":"ws-v1",
                       "uid":"uid-42","controller":true,"blockOwnerDeletion":true})"));
}

TEST(DatasyncClaim, SpecDefaults) {
  auto ds = make_ds();
  auto c = claim(ds, ds.spec.vms[0]);
  EXPECT_EQ(strings(at(c, {"spec", "accessModes"})), std::vector<std::string>{"ReadWriteOnce"});
  EXPECT_EQ(at(c, {"spec", "volumeMode"}).as_string(), "Filesystem");
  EXPECT_EQ(at(c, {"spec", "resources", "requests", "storage"}).as_string(), "10Gi");
  EXPECT_EQ(c.at_path({"spec", "storageClassName"}), nullptr) << "the cluster's default class";
}

TEST(DatasyncClaim, StorageSettings) {
  auto ds = make_ds();
  ds.spec.storage.storage_class_name = "fast-ssd";
  ds.spec.storage.access_modes = {"ReadWriteMany", "ReadOnlyMany"};
  auto vm = ds.spec.vms[0];
  vm.size = int64_t{1} << 30;
  auto c = claim(ds, vm);
  EXPECT_EQ(at(c, {"spec", "storageClassName"}).as_string(), "fast-ssd");
  EXPECT_EQ(strings(at(c, {"spec", "accessModes"})),
            (std::vector<std::string>{"ReadWriteMany", "ReadOnlyMany"}));
  EXPECT_EQ(at(c, {"spec", "resources", "requests", "storage"}).as_string(), "1127Mi");

  // "" means no class (pre-provisioned volumes), which differs from leaving it out.
  ds.spec.storage.storage_class_name = "";
  c = claim(ds, vm);
  const auto* sc = c.at_path({"spec", "storageClassName"});
  ASSERT_NE(sc, nullptr) << json::dump(c);
  ASSERT_TRUE(sc->is_string());
  EXPECT_EQ(sc->as_string(), "");

  ds.spec.storage.size = "50Gi";
  c = claim(ds, vm);
  EXPECT_EQ(at(c, {"spec", "resources", "requests", "storage"}).as_string(), "50Gi");
}

TEST(DatasyncClaim, WorkspaceLabelOnlyWhenAValidLabelValue) {
  auto ds = make_ds();
  ds.spec.workspace_id = std::string(64, 'w');
  auto c = claim(ds, ds.spec.vms[0]);
  EXPECT_EQ(c.at_path({"metadata", "labels", "tidesync.io/workspace"}), nullptr) << json::dump(c);
  EXPECT_NE(c.at_path({"metadata", "labels", "tidesync.io/datasync"}), nullptr);
}

TEST(DatasyncClaim, LongNameIsHashedInTheLabel) {
  auto ds = make_ds();
  ds.metadata.name = std::string(70, 'n');
  auto c = claim(ds, ds.spec.vms[0]);
  EXPECT_EQ(at(c, {"metadata", "labels", "tidesync.io/datasync"}).as_string(),
            datasync_label_value(ds.metadata.name));
  EXPECT_EQ(at(c, {"metadata", "name"}).as_string(), datasync_claim_name(ds.metadata.name, "base"));
  EXPECT_EQ(at(c, {"metadata", "ownerReferences"}).as_array()[0].get_string("name"),
            ds.metadata.name);
}

TEST(DatasyncClaim, NeedsNameNamespaceAndUid) {
  auto ds = make_ds();
  ds.metadata.uid.clear();
  auto c = build_datasync_claim(ds, ds.spec.vms[0]);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, errc::invalid_argument);
  EXPECT_NE(c.error().message.find("metadata.uid"), std::string::npos) << c.error().message;

  ds = make_ds();
  ds.metadata.namespace_.clear();
  EXPECT_FALSE(build_datasync_claim(ds, ds.spec.vms[0]).has_value());
  ds = make_ds();
  ds.metadata.name.clear();
  EXPECT_FALSE(build_datasync_claim(ds, ds.spec.vms[0]).has_value());
}

// ---------------------------------------------------------------------------------------------
// The populate Job

TEST(PopulateJob, MetadataOwnerAndLabels) {
  auto ds = make_ds();
  ds.status.retry_count = 2;
  auto j = populate_job(ds, ds.spec.vms[0]);
  EXPECT_EQ(j.get_string("apiVersion"), "batch/v1");
  EXPECT_EQ(j.get_string("kind"), "Job");
  EXPECT_EQ(at(j, {"metadata", "name"}).as_string(), datasync_job_name("ws-v1", "base", 3, 2));
  EXPECT_EQ(at(j, {"metadata", "name"}).as_string(), "ws-v1-base-3-2");
  EXPECT_EQ(at(j, {"metadata", "namespace"}).as_string(), "team-a");
  auto labels = parsed(R"({"app.kubernetes.io/managed-by":"tidesync","tidesync.io/datasync":"ws-v1",
                 "tidesync.io/datasync-vm":"base","tidesync.io/workspace":"ws"})");
  EXPECT_EQ(at(j, {"metadata", "labels"}), labels);
  EXPECT_EQ(at(j, {"spec", "template", "metadata", "labels"}), labels) << "on the pods too";
  const auto& owners = at(j, {"metadata", "ownerReferences"});
  ASSERT_TRUE(owners.is_array());
  ASSERT_EQ(owners.as_array().size(), 1U);
  EXPECT_EQ(owners.as_array()[0],
            parsed(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"DataSync","name":"ws-v1",
                       "uid":"uid-42","controller":true,"blockOwnerDeletion":true})"));
}

TEST(PopulateJob, SpecLimits) {
  auto ds = make_ds();
  auto j = populate_job(ds, ds.spec.vms[0]);
  const auto& backoff = at(j, {"spec", "backoffLimit"});
  ASSERT_TRUE(backoff.is_int());
  EXPECT_EQ(backoff.as_int(), 0) << "retries are the policy's";
  EXPECT_EQ(at(j, {"spec", "activeDeadlineSeconds"}).as_int(), 6 * 3600);
  EXPECT_EQ(pod_spec(j).get_string("restartPolicy"), "Never");

  populate_settings s;
  s.deadline_seconds = 600;
  j = populate_job(ds, ds.spec.vms[0], s);
  EXPECT_EQ(at(j, {"spec", "activeDeadlineSeconds"}).as_int(), 600);
  s.deadline_seconds = 0;
  j = populate_job(ds, ds.spec.vms[0], s);
  EXPECT_EQ(j.at_path({"spec", "activeDeadlineSeconds"}), nullptr) << "0: no deadline";
}

TEST(PopulateJob, ArgsForAPlainHttpSource) {
  auto ds = make_ds();
  auto j = populate_job(ds, ds.spec.vms[0]);
  const auto& c = container_of(j);
  EXPECT_EQ(c.get_string("name"), "populate");
  EXPECT_EQ(c.get_string("image"), "tidesync/tidesync:" TIDESYNC_VERSION);
  EXPECT_EQ(strings(at(c, {"command"})), std::vector<std::string>{"tidesync"});
  EXPECT_EQ(strings(at(c, {"args"})),
            (std::vector<std::string>{"agent", "populate", "--source-type", "http", "--url",
                                      "https://images.example.com/base.qcow2", "--dest", "/data",
                                      "--termination-log", "/dev/termination-log"}));
}

TEST(PopulateJob, ArgsWithChecksumAndSize) {
  auto ds = make_ds();
  auto vm = make_vm("tools", datasync_source_type::s3, "s3://images/tools.qcow2");
  vm.checksum = k_checksum;
  vm.size = 1073741824;
  auto j = populate_job(ds, vm);
  EXPECT_EQ(strings(at(container_of(j), {"args"})),
            (std::vector<std::string>{"agent", "populate", "--source-type", "s3", "--url",
                                      "s3://images/tools.qcow2", "--dest", "/data", "--checksum",
                                      k_checksum, "--size", "1073741824", "--termination-log",
                                      "/dev/termination-log"}));
  // Only one of them.
  vm.size.reset();
  j = populate_job(ds, vm);
  EXPECT_EQ(strings(at(container_of(j), {"args"})),
            (std::vector<std::string>{"agent", "populate", "--source-type", "s3", "--url",
                                      "s3://images/tools.qcow2", "--dest", "/data", "--checksum",
                                      k_checksum, "--termination-log", "/dev/termination-log"}));
}

TEST(PopulateJob, PvcSourceIsMountedReadOnly) {
  auto ds = make_ds();
  const auto& vm = ds.spec.vms[1];  // pvc://golden-images/disk.img
  auto j = populate_job(ds, vm);
  const auto& c = container_of(j);
  EXPECT_EQ(
      strings(at(c, {"args"})),
      (std::vector<std::string>{"agent", "populate", "--source-type", "pvc", "--url",
                                "pvc://golden-images/disk.img", "--dest", "/data", "--pvc-root",
                                "/source", "--termination-log", "/dev/termination-log"}));
  const auto* mount = named(at(c, {"volumeMounts"}), "source");
  ASSERT_NE(mount, nullptr) << json::dump(c);
  EXPECT_EQ(mount->get_string("mountPath"), "/source");
  EXPECT_TRUE(mount->get_bool("readOnly"));
  const auto* volume = named(at(pod_spec(j), {"volumes"}), "source");
  ASSERT_NE(volume, nullptr) << json::dump(j);
  EXPECT_EQ(*volume->at("persistentVolumeClaim"),
            parsed(R"({"claimName":"golden-images","readOnly":true})"));
  // The VM's own claim is the data volume.
  const auto* data = named(at(pod_spec(j), {"volumes"}), "data");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->at_path({"persistentVolumeClaim", "claimName"})->as_string(), "ws-v1-golden");
}

TEST(PopulateJob, NonPvcSourcesHaveNoSourceVolume) {
  auto ds = make_ds();
  auto j = populate_job(ds, ds.spec.vms[0]);
  EXPECT_EQ(named(at(container_of(j), {"volumeMounts"}), "source"), nullptr);
  EXPECT_EQ(named(at(pod_spec(j), {"volumes"}), "source"), nullptr);
  for (const auto& a : strings(at(container_of(j), {"args"})))
    EXPECT_NE(a, "--pvc-root");
}

TEST(PopulateJob, BadPvcUrlIsAnError) {
  auto ds = make_ds();
  auto vm = make_vm("golden", datasync_source_type::pvc, "pvc://golden-images");
  auto j = build_populate_job(ds, vm);
  ASSERT_FALSE(j.has_value());
  EXPECT_EQ(j.error().code, errc::invalid_argument);
  EXPECT_EQ(j.error().message.rfind("VM golden: ", 0), 0U) << j.error().message;
}

TEST(PopulateJob, VolumesAndMounts) {
  auto ds = make_ds();
  auto j = populate_job(ds, ds.spec.vms[0]);
  const auto& c = container_of(j);
  const auto* data_mount = named(at(c, {"volumeMounts"}), "data");
  ASSERT_NE(data_mount, nullptr);
  EXPECT_EQ(data_mount->get_string("mountPath"), "/data");
  EXPECT_FALSE(data_mount->get_bool("readOnly"));
  const auto* tmp_mount = named(at(c, {"volumeMounts"}), "tmp");
  ASSERT_NE(tmp_mount, nullptr);
  EXPECT_EQ(tmp_mount->get_string("mountPath"), "/tmp");

  const auto& volumes = at(pod_spec(j), {"volumes"});
  const auto* data = named(volumes, "data");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(*data->at("persistentVolumeClaim"), parsed(R"({"claimName":"ws-v1-base"})"));
  const auto* tmp = named(volumes, "tmp");
  ASSERT_NE(tmp, nullptr);
  EXPECT_EQ(*tmp->at("emptyDir"), json::value(json::object{}));

  const auto* home = named(at(c, {"env"}), "HOME");
  ASSERT_NE(home, nullptr);
  EXPECT_EQ(home->get_string("value"), "/tmp");
}

TEST(PopulateJob, SecretIsPassedByReference) {
  auto ds = make_ds();
  auto j = populate_job(ds, ds.spec.vms[0]);
  EXPECT_EQ(container_of(j).at("envFrom"), nullptr);

  ds.spec.secret_ref = secret_reference{"image-credentials"};
  j = populate_job(ds, ds.spec.vms[0]);
  const auto* env_from = container_of(j).at("envFrom");
  ASSERT_NE(env_from, nullptr) << json::dump(j);
  EXPECT_EQ(*env_from, parsed(R"([{"secretRef":{"name":"image-credentials"}}])"));
}

TEST(PopulateJob, RunsAsNonRoot) {
  auto ds = make_ds();
  auto j = populate_job(ds, ds.spec.vms[0]);
  EXPECT_EQ(*pod_spec(j).at("securityContext"),
            parsed(R"({"runAsNonRoot":true,"runAsUser":65532,"runAsGroup":65532,
                       "fsGroup":65532})"));
  const auto& c = container_of(j);
  EXPECT_EQ(*c.at("securityContext"),
            parsed(R"({"runAsNonRoot":true,"runAsUser":65532,"runAsGroup":65532,
                       "readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false,
                       "capabilities":{"drop":["ALL"]}})"));
  EXPECT_EQ(c.get_string("terminationMessagePath"), "/dev/termination-log");
  EXPECT_EQ(c.get_string("terminationMessagePolicy"), "File");
  EXPECT_EQ(pod_spec(j).at("serviceAccountName"), nullptr);
}

TEST(PopulateJob, Settings) {
  auto ds = make_ds();
  populate_settings s;
  s.image = "registry.example.com/tidesync:dev";
  s.run_as_user = 1000;
  s.service_account = "tidesync-agent";
  auto j = populate_job(ds, ds.spec.vms[0], s);
  EXPECT_EQ(container_of(j).get_string("image"), "registry.example.com/tidesync:dev");
  EXPECT_EQ(pod_spec(j).get_string("serviceAccountName"), "tidesync-agent");
  EXPECT_EQ(at(pod_spec(j), {"securityContext", "runAsUser"}).as_int(), 1000);
  EXPECT_EQ(at(pod_spec(j), {"securityContext", "fsGroup"}).as_int(), 1000);
  EXPECT_EQ(at(container_of(j), {"securityContext", "runAsUser"}).as_int(), 1000);
}

TEST(PopulateJob, NeedsNameNamespaceAndUid) {
  auto ds = make_ds();
  ds.metadata.uid.clear();
  auto j = build_populate_job(ds, ds.spec.vms[0]);
  ASSERT_FALSE(j.has_value());
  EXPECT_EQ(j.error().code, errc::invalid_argument);
  EXPECT_NE(j.error().message.find("metadata.uid"), std::string::npos) << j.error().message;

  ds = make_ds();
  ds.metadata.namespace_.clear();
  EXPECT_FALSE(build_populate_job(ds, ds.spec.vms[0]).has_value());
  ds = make_ds();
  ds.metadata.name.clear();
  EXPECT_FALSE(build_populate_job(ds, ds.spec.vms[0]).has_value());
}
