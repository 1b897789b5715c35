// A persistent connection to one pool of a Ceph cluster, for the volume service's rbd driver.
//
// Every call that may block (anything that talks to a monitor or an OSD) runs on the libuv
// thread pool through an AsyncWorker and settles a promise on the JS thread; nothing here blocks
// the event loop. Failures reject with an Error carrying the positive errno (`errno`), its name
// (`code`, e.g. "ENOENT"), the librbd/librados function (`op`) and the image or snapshot it was
// about (`target`); the TypeScript side maps those to domain errors.
//
// The rados handle and io context are only read and written on the JS thread (assigned when a
// connect settles, taken away by close), so no lock is needed for them; jobs capture the handles
// they use, and close() refuses while jobs are in flight.

#include <napi.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

// Largest integer a JS number holds exactly; sizes above it are refused.
constexpr double kMaxSafeInteger = 9007199254740991.0;

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  return name != nullptr ? std::string(name) : "E" + std::to_string(err);
}

Napi::Error CephError(Napi::Env env, const std::string& op, const std::string& target, int err,
                      const std::string& detail) {
  std::string message = op;
  if (!target.empty()) message += " " + target;
  message += ": " + std::string(strerror(err)) + " (" + ErrnoName(err) + ")";
  if (!detail.empty()) message += ": " + detail;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("op", Napi::String::New(env, op));
  if (!target.empty()) error.Set("target", Napi::String::New(env, target));
  return error;
}

// An open image, closed when it goes out of scope (on the worker thread that opened it).
struct Image {
  rbd_image_t handle = nullptr;
  Image() = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  ~Image() {
    if (handle != nullptr) rbd_close(handle);
  }
};

// NOTE: read-only opens set no watch on the header (cheaper, and allowed with read-only caps);
// everything that changes an image opens it read-write so librbd coordinates with other clients.
int OpenImage(rados_ioctx_t io, const std::string& name, Image& image, const char* snap, bool read_only) {
  return read_only ? rbd_open_read_only(io, name.c_str(), &image.handle, snap)
                   : rbd_open(io, name.c_str(), &image.handle, snap);
}

// One blocking call on the thread pool. `work` runs there and returns 0 or -errno (it may put a
// human-readable detail, such as a monitor's status line, into its argument); `result` builds the
// resolved value on the JS thread.
class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<int(std::string& detail)>;
  using Result = std::function<Napi::Value(Napi::Env)>;
  using Finally = std::function<void()>;

  Job(Napi::Env env, Napi::Object owner, std::atomic<int>* inflight, std::string op, std::string target, Work work,
      Result result, Finally finally = nullptr)
      : Napi::AsyncWorker(env, "rbd-native"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(Napi::Persistent(owner)),
        inflight_(inflight),
        op_(std::move(op)),
        target_(std::move(target)),
        work_(std::move(work)),
        result_(std::move(result)),
        finally_(std::move(finally)) {
    inflight_->fetch_add(1);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override { rc_ = work_(detail_); }

  void OnOK() override {
    inflight_->fetch_sub(1);
    if (finally_) finally_();
    Napi::Env env = Env();
    if (rc_ < 0) {
      deferred_.Reject(CephError(env, op_, target_, -rc_, detail_).Value());
      return;
    }
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }

  void OnError(const Napi::Error& error) override {
    inflight_->fetch_sub(1);
    if (finally_) finally_();
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  // Keeps the Cluster object (and so its counters) alive while the job runs.
  Napi::ObjectReference owner_;
  std::atomic<int>* inflight_;
  std::string op_;
  std::string target_;
  Work work_;
  Result result_;
  Finally finally_;
  std::string detail_;
  int rc_ = 0;
};

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  }
  std::string value = info[index].As<Napi::String>().Utf8Value();
  // A NUL would silently cut the name short at the C boundary.
  if (value.empty() || value.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a non-empty string without NUL");
  }
  return value;
}

uint64_t SizeArg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= kMaxSafeInteger) || value != static_cast<double>(static_cast<uint64_t>(value))) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be a whole number of bytes");
  }
  return static_cast<uint64_t>(value);
}

std::string OptionalString(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return "";
  if (!value.IsString()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

Napi::Value SafeNumber(Napi::Env env, uint64_t value) { return Napi::Number::New(env, static_cast<double>(value)); }

struct LinkedImage {
  std::string pool;
  std::string pool_namespace;
  std::string image;
  std::string snapshot;
  bool trash = false;
};

Napi::Object LinkedImageObject(Napi::Env env, const LinkedImage& spec, bool with_snapshot) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("pool", spec.pool);
  object.Set("namespace", spec.pool_namespace);
  object.Set("image", spec.image);
  if (with_snapshot) object.Set("snapshot", spec.snapshot);
  object.Set("trash", spec.trash);
  return object;
}

std::string CopyString(const char* text) { return text != nullptr ? std::string(text) : std::string(); }

class Cluster : public Napi::ObjectWrap<Cluster> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Cluster",
                       {
                           InstanceMethod<&Cluster::Connect>("connect"),
                           InstanceMethod<&Cluster::Close>("close"),
                           InstanceMethod<&Cluster::CreateImage>("createImage"),
                           InstanceMethod<&Cluster::RemoveImage>("removeImage"),
                           InstanceMethod<&Cluster::StatImage>("statImage"),
                           InstanceMethod<&Cluster::ListImages>("listImages"),
                           InstanceMethod<&Cluster::ImageSizes>("imageSizes"),
                           InstanceMethod<&Cluster::ListSnapshots>("listSnapshots"),
                           InstanceMethod<&Cluster::CreateSnapshot>("createSnapshot"),
                           InstanceMethod<&Cluster::ProtectSnapshot>("protectSnapshot"),
                           InstanceMethod<&Cluster::CreateProtectedSnapshot>("createProtectedSnapshot"),
                           InstanceMethod<&Cluster::UnprotectSnapshot>("unprotectSnapshot"),
                           InstanceMethod<&Cluster::RemoveSnapshot>("removeSnapshot"),
                           InstanceMethod<&Cluster::RenameSnapshot>("renameSnapshot"),
                           InstanceMethod<&Cluster::RollbackSnapshot>("rollbackSnapshot"),
                           InstanceMethod<&Cluster::ListChildren>("listChildren"),
                           InstanceMethod<&Cluster::Clone>("clone"),
                           InstanceMethod<&Cluster::Flatten>("flatten"),
                           InstanceMethod<&Cluster::Resize>("resize"),
                           InstanceMethod<&Cluster::AllocatedExtents>("allocatedExtents"),
                           InstanceMethod<&Cluster::ReadImage>("readImage"),
                           InstanceMethod<&Cluster::WriteImage>("writeImage"),
                           InstanceMethod<&Cluster::MonCommand>("monCommand"),
                           InstanceAccessor<&Cluster::Connected>("connected"),
                       });
  }

  explicit Cluster(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Cluster>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
    Napi::Object options = info[0].As<Napi::Object>();
    cluster_name_ = OptionalString(options, "clusterName");
    if (cluster_name_.empty()) cluster_name_ = "ceph";
    user_ = OptionalString(options, "user");
    if (user_.empty()) user_ = "admin";
    conf_path_ = OptionalString(options, "confPath");
    keyring_ = OptionalString(options, "keyring");
    pool_ = OptionalString(options, "pool");
    if (pool_.empty()) throw Napi::TypeError::New(env, "pool must be a non-empty string");
    Napi::Value config = options.Get("config");
    if (config.IsObject()) {
      Napi::Object settings = config.As<Napi::Object>();
      Napi::Array keys = settings.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
        Napi::Value value = settings.Get(key);
        if (!value.IsString()) throw Napi::TypeError::New(env, "config." + key + " must be a string");
        config_.emplace_back(key, value.As<Napi::String>().Utf8Value());
      }
    }
  }

  ~Cluster() override {
    // Only reached when the object is collected without close(): no job holds it then.
    if (io_ != nullptr) rados_ioctx_destroy(io_);
    if (rados_ != nullptr) rados_shutdown(rados_);
  }

 private:
  Napi::Value Connected(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), io_ != nullptr); }

  Napi::Value Rejected(Napi::Env env, const std::string& op, int err, const std::string& detail) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(CephError(env, op, "", err, detail).Value());
    return deferred.Promise();
  }

  Napi::Value Queue(Napi::Env env, std::string op, std::string target, Job::Work work, Job::Result result = nullptr,
                    Job::Finally finally = nullptr) {
    auto* job = new Job(env, Value(), &inflight_, std::move(op), std::move(target), std::move(work), std::move(result),
                        std::move(finally));
    Napi::Promise promise = job->Promise();
    job->Queue();
    return promise;
  }

  // Runs `work` with the connected io context, or rejects with ENOTCONN.
  Napi::Value WithIo(const Napi::CallbackInfo& info, const char* op, std::string target,
                     std::function<int(rados_ioctx_t, std::string&)> work, Job::Result result = nullptr) {
    if (io_ == nullptr || closing_) return Rejected(info.Env(), op, ENOTCONN, "not connected");
    rados_ioctx_t io = io_;
    return Queue(
        info.Env(), op, std::move(target), [io, work = std::move(work)](std::string& detail) { return work(io, detail); },
        std::move(result));
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (io_ != nullptr) {
      Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
      done.Resolve(env.Undefined());
      return done.Promise();
    }
    if (connecting_ || closing_) return Rejected(env, "rados_connect", EALREADY, "a connect or close is in progress");
    connecting_ = true;
    struct Handles {
      rados_t rados = nullptr;
      rados_ioctx_t io = nullptr;
    };
    auto handles = std::make_shared<Handles>();
    std::string cluster_name = cluster_name_;
    std::string name = "client." + user_;
    std::string conf_path = conf_path_;
    std::string keyring = keyring_;
    std::string pool = pool_;
    auto config = config_;
    auto work = [=](std::string& detail) -> int {
      rados_t rados = nullptr;
      int r = rados_create2(&rados, cluster_name.c_str(), name.c_str(), 0);
      if (r < 0) {
        detail = "rados_create2";
        return r;
      }
      auto fail = [&](int rc, std::string what) {
        detail = std::move(what);
        rados_shutdown(rados);
        return rc;
      };
      // An empty path lets librados search its defaults ($CEPH_CONF, /etc/ceph/$cluster.conf...).
      r = rados_conf_read_file(rados, conf_path.empty() ? nullptr : conf_path.c_str());
      if (r < 0) return fail(r, "reading " + (conf_path.empty() ? std::string("the default ceph.conf") : conf_path));
      if (!keyring.empty()) {
        r = rados_conf_set(rados, "keyring", keyring.c_str());
        if (r < 0) return fail(r, "setting keyring");
      }
      for (const auto& [key, value] : config) {
        r = rados_conf_set(rados, key.c_str(), value.c_str());
        if (r < 0) return fail(r, "setting " + key);
      }
      r = rados_connect(rados);
      if (r < 0) return fail(r, "connecting to the cluster");
      rados_ioctx_t io = nullptr;
      r = rados_ioctx_create(rados, pool.c_str(), &io);
      if (r < 0) return fail(r, "opening pool " + pool);
      handles->rados = rados;
      handles->io = io;
      return 0;
    };
    return Queue(
        env, "rados_connect", cluster_name_, work,
        [this, handles](Napi::Env e) {
          rados_ = handles->rados;
          io_ = handles->io;
          return e.Undefined();
        },
        [this]() { connecting_ = false; });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (inflight_.load() > 0) return Rejected(env, "rados_shutdown", EBUSY, "calls are still in flight");
    rados_t rados = rados_;
    rados_ioctx_t io = io_;
    rados_ = nullptr;
    io_ = nullptr;
    closing_ = true;
    return Queue(
        env, "rados_shutdown", "",
        [rados, io](std::string&) {
          if (io != nullptr) rados_ioctx_destroy(io);
          if (rados != nullptr) rados_shutdown(rados);
          return 0;
        },
        nullptr, [this]() { closing_ = false; });
  }

  Napi::Value CreateImage(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    uint64_t size = SizeArg(info, 1, "size");
    return WithIo(info, "rbd_create4", name, [name, size](rados_ioctx_t io, std::string&) {
      rbd_image_options_t options;
      rbd_image_options_create(&options);
      // Empty options: features, order and striping come from the cluster's rbd_default_* settings.
      int r = rbd_create4(io, name.c_str(), size, options);
      rbd_image_options_destroy(options);
      return r;
    });
  }

  Napi::Value RemoveImage(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    return WithIo(info, "rbd_remove", name,
                  [name](rados_ioctx_t io, std::string&) { return rbd_remove(io, name.c_str()); });
  }

  Napi::Value StatImage(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    struct Out {
      uint64_t size = 0;
      bool has_parent = false;
      LinkedImage parent;
    };
    auto out = std::make_shared<Out>();
    return WithIo(
        info, "rbd_stat", name,
        [name, out](rados_ioctx_t io, std::string&) {
          Image image;
          int r = OpenImage(io, name, image, nullptr, true);
          if (r < 0) return r;
          r = rbd_get_size(image.handle, &out->size);
          if (r < 0) return r;
          rbd_linked_image_spec_t parent_image;
          rbd_snap_spec_t parent_snap;
          r = rbd_get_parent(image.handle, &parent_image, &parent_snap);
          if (r == -ENOENT) return 0;
          if (r < 0) return r;
          out->has_parent = true;
          out->parent.pool = CopyString(parent_image.pool_name);
          out->parent.pool_namespace = CopyString(parent_image.pool_namespace);
          out->parent.image = CopyString(parent_image.image_name);
          out->parent.trash = parent_image.trash;
          out->parent.snapshot = CopyString(parent_snap.name);
          rbd_linked_image_spec_cleanup(&parent_image);
          rbd_snap_spec_cleanup(&parent_snap);
          return 0;
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("size", SafeNumber(env, out->size));
          result.Set("parent", out->has_parent ? Napi::Value(LinkedImageObject(env, out->parent, true)) : env.Null());
          return result;
        });
  }

  static int ListImageNames(rados_ioctx_t io, std::vector<std::string>& names) {
    std::vector<rbd_image_spec_t> specs(64);
    for (;;) {
      size_t max = specs.size();
      int r = rbd_list2(io, specs.data(), &max);
      if (r == -ERANGE) {
        specs.resize(max + 16);
        continue;
      }
      if (r < 0) return r;
      for (size_t i = 0; i < max; i++) names.emplace_back(CopyString(specs[i].name));
      rbd_image_spec_list_cleanup(specs.data(), max);
      return 0;
    }
  }

  Napi::Value ListImages(const Napi::CallbackInfo& info) {
    auto names = std::make_shared<std::vector<std::string>>();
    return WithIo(
        info, "rbd_list2", pool_, [names](rados_ioctx_t io, std::string&) { return ListImageNames(io, *names); },
        [names](Napi::Env env) -> Napi::Value {
          Napi::Array result = Napi::Array::New(env, names->size());
          for (size_t i = 0; i < names->size(); i++) result.Set(static_cast<uint32_t>(i), (*names)[i]);
          return result;
        });
  }

  // Names and sizes of the pool's images whose name starts with `prefix`, in one job (used for
  // the provisioned capacity; images removed meanwhile are left out).
  Napi::Value ImageSizes(const Napi::CallbackInfo& info) {
    std::string prefix = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    auto out = std::make_shared<std::vector<std::pair<std::string, uint64_t>>>();
    return WithIo(
        info, "rbd_get_size", pool_,
        [prefix, out](rados_ioctx_t io, std::string&) {
          std::vector<std::string> names;
          int r = ListImageNames(io, names);
          if (r < 0) return r;
          for (const auto& name : names) {
            if (name.compare(0, prefix.size(), prefix) != 0) continue;
            Image image;
            r = OpenImage(io, name, image, nullptr, true);
            if (r == -ENOENT) continue;
            if (r < 0) return r;
            uint64_t size = 0;
            r = rbd_get_size(image.handle, &size);
            if (r < 0) return r;
            out->emplace_back(name, size);
          }
          return 0;
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array result = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); i++) {
            Napi::Object entry = Napi::Object::New(env);
            entry.Set("name", (*out)[i].first);
            entry.Set("size", SafeNumber(env, (*out)[i].second));
            result.Set(static_cast<uint32_t>(i), entry);
          }
          return result;
        });
  }

  Napi::Value ListSnapshots(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    struct Snap {
      uint64_t id;
      uint64_t size;
      std::string name;
      bool is_protected;
    };
    auto out = std::make_shared<std::vector<Snap>>();
    return WithIo(
        info, "rbd_snap_list", name,
        [name, out](rados_ioctx_t io, std::string&) {
          Image image;
          int r = OpenImage(io, name, image, nullptr, true);
          if (r < 0) return r;
          std::vector<rbd_snap_info_t> snaps(16);
          int count = 0;
          for (;;) {
            int max = static_cast<int>(snaps.size());
            count = rbd_snap_list(image.handle, snaps.data(), &max);
            if (count == -ERANGE) {
              snaps.resize(static_cast<size_t>(max) + 8);
              continue;
            }
            if (count < 0) return count;
            break;
          }
          int status = 0;
          for (int i = 0; i < count; i++) {
            int is_protected = 0;
            if (status == 0) status = rbd_snap_is_protected(image.handle, snaps[i].name, &is_protected);
            out->push_back(Snap{snaps[i].id, snaps[i].size, CopyString(snaps[i].name), is_protected != 0});
          }
          rbd_snap_list_end(snaps.data());
          return status;
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array result = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); i++) {
            const Snap& snap = (*out)[i];
            Napi::Object entry = Napi::Object::New(env);
            entry.Set("id", SafeNumber(env, snap.id));
            entry.Set("name", snap.name);
            entry.Set("size", SafeNumber(env, snap.size));
            entry.Set("protected", snap.is_protected);
            result.Set(static_cast<uint32_t>(i), entry);
          }
          return result;
        });
  }

  // The snapshot calls share one shape: open the image read-write, make one call on it.
  Napi::Value OnImage(const Napi::CallbackInfo& info, const char* op, std::function<int(rbd_image_t, const std::string&)> call) {
    std::string name = StringArg(info, 0, "image");
    std::string snap = StringArg(info, 1, "snapshot");
    return WithIo(info, op, name + "@" + snap, [name, snap, call = std::move(call)](rados_ioctx_t io, std::string&) {
      Image image;
      int r = OpenImage(io, name, image, nullptr, false);
      if (r < 0) return r;
      return call(image.handle, snap);
    });
  }

  Napi::Value CreateSnapshot(const Napi::CallbackInfo& info) {
    return OnImage(info, "rbd_snap_create",
                   [](rbd_image_t image, const std::string& snap) { return rbd_snap_create(image, snap.c_str()); });
  }

  Napi::Value ProtectSnapshot(const Napi::CallbackInfo& info) {
    return OnImage(info, "rbd_snap_protect",
                   [](rbd_image_t image, const std::string& snap) { return rbd_snap_protect(image, snap.c_str()); });
  }

  // A snapshot made and protected on ONE open of the image (an open reads the image's header
  // objects from the OSDs and sets a watch: the costly part). A snapshot that exists already is
  // kept, one protected already is fine: a retry after a crash between the two steps completes.
  Napi::Value CreateProtectedSnapshot(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    std::string snap = StringArg(info, 1, "snapshot");
    return WithIo(info, "rbd_snap_create", name + "@" + snap, [name, snap](rados_ioctx_t io, std::string& detail) {
      Image image;
      int r = OpenImage(io, name, image, nullptr, false);
      if (r < 0) return r;
      r = rbd_snap_create(image.handle, snap.c_str());
      if (r < 0 && r != -EEXIST) return r;
      r = rbd_snap_protect(image.handle, snap.c_str());
      if (r == -EBUSY) return 0;
      if (r < 0) detail = "rbd_snap_protect after the snapshot was made";
      return r;
    });
  }

  Napi::Value UnprotectSnapshot(const Napi::CallbackInfo& info) {
    return OnImage(info, "rbd_snap_unprotect",
                   [](rbd_image_t image, const std::string& snap) { return rbd_snap_unprotect(image, snap.c_str()); });
  }

  Napi::Value RemoveSnapshot(const Napi::CallbackInfo& info) {
    return OnImage(info, "rbd_snap_remove",
                   [](rbd_image_t image, const std::string& snap) { return rbd_snap_remove(image, snap.c_str()); });
  }

  Napi::Value RollbackSnapshot(const Napi::CallbackInfo& info) {
    return OnImage(info, "rbd_snap_rollback",
                   [](rbd_image_t image, const std::string& snap) { return rbd_snap_rollback(image, snap.c_str()); });
  }

  Napi::Value RenameSnapshot(const Napi::CallbackInfo& info) {
    std::string to = StringArg(info, 2, "new snapshot name");
    return OnImage(info, "rbd_snap_rename", [to](rbd_image_t image, const std::string& snap) {
      return rbd_snap_rename(image, snap.c_str(), to.c_str());
    });
  }

  Napi::Value ListChildren(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    std::string snap = StringArg(info, 1, "snapshot");
    auto out = std::make_shared<std::vector<LinkedImage>>();
    return WithIo(
        info, "rbd_list_children3", name + "@" + snap,
        [name, snap, out](rados_ioctx_t io, std::string&) {
          Image image;
          int r = OpenImage(io, name, image, snap.c_str(), true);
          if (r < 0) return r;
          std::vector<rbd_linked_image_spec_t> specs(16);
          for (;;) {
            size_t max = specs.size();
            r = rbd_list_children3(image.handle, specs.data(), &max);
            if (r == -ERANGE) {
              specs.resize(max + 8);
              continue;
            }
            if (r < 0) return r;
            for (size_t i = 0; i < max; i++) {
              out->push_back(LinkedImage{CopyString(specs[i].pool_name), CopyString(specs[i].pool_namespace),
                                         CopyString(specs[i].image_name), "", specs[i].trash});
            }
            rbd_linked_image_spec_list_cleanup(specs.data(), max);
            return 0;
          }
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array result = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); i++) {
            result.Set(static_cast<uint32_t>(i), LinkedImageObject(env, (*out)[i], false));
          }
          return result;
        });
  }

  Napi::Value Clone(const Napi::CallbackInfo& info) {
    std::string parent = StringArg(info, 0, "parent image");
    std::string snap = StringArg(info, 1, "snapshot");
    std::string child = StringArg(info, 2, "child image");
    return WithIo(info, "rbd_clone3", parent + "@" + snap + " -> " + child,
                  [parent, snap, child](rados_ioctx_t io, std::string&) {
                    rbd_image_options_t options;
                    rbd_image_options_create(&options);
                    int r = rbd_clone3(io, parent.c_str(), snap.c_str(), io, child.c_str(), options);
                    rbd_image_options_destroy(options);
                    return r;
                  });
  }

  // flatten(image, pool?, namespace?): the child of a snapshot may live in another pool or namespace.
  Napi::Value Flatten(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    std::string pool = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    std::string pool_namespace =
        info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
    rados_t rados = rados_;
    std::string own_pool = pool_;
    std::string target = (pool.empty() ? own_pool : pool) + "/" + (pool_namespace.empty() ? "" : pool_namespace + "/") + name;
    return WithIo(info, "rbd_flatten", target,
                  [rados, name, pool, pool_namespace, own_pool](rados_ioctx_t io, std::string&) {
                    rados_ioctx_t other = nullptr;
                    if ((!pool.empty() && pool != own_pool) || !pool_namespace.empty()) {
                      int r = rados_ioctx_create(rados, pool.empty() ? own_pool.c_str() : pool.c_str(), &other);
                      if (r < 0) return r;
                      rados_ioctx_set_namespace(other, pool_namespace.c_str());
                    }
                    int r;
                    {
                      Image image;
                      r = OpenImage(other != nullptr ? other : io, name, image, nullptr, false);
                      if (r >= 0) r = rbd_flatten(image.handle);
                    }
                    if (other != nullptr) rados_ioctx_destroy(other);
                    return r;
                  });
  }

  Napi::Value Resize(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    uint64_t size = SizeArg(info, 1, "size");
    return WithIo(info, "rbd_resize2", name, [name, size](rados_ioctx_t io, std::string&) {
      Image image;
      int r = OpenImage(io, name, image, nullptr, false);
      if (r < 0) return r;
      // Never shrinks: a smaller size fails with EINVAL instead of destroying data.
      return rbd_resize2(image.handle, size, false, nullptr, nullptr);
    });
  }

  // The extents of the image that hold data (its parent's included), as [offset, length, ...]
  // merged where adjacent: rbd_diff_iterate2 from the beginning of time. What is not listed
  // reads as zeros.
  Napi::Value AllocatedExtents(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    auto out = std::make_shared<std::vector<uint64_t>>();
    return WithIo(
        info, "rbd_diff_iterate2", name,
        [name, out](rados_ioctx_t io, std::string&) {
          Image image;
          int r = OpenImage(io, name, image, nullptr, true);
          if (r < 0) return r;
          uint64_t size = 0;
          r = rbd_get_size(image.handle, &size);
          if (r < 0) return r;
          auto collect = [](uint64_t offset, size_t length, int exists, void* arg) -> int {
            auto* extents = static_cast<std::vector<uint64_t>*>(arg);
            if (exists == 0 || length == 0) return 0;
            if (!extents->empty() && extents->at(extents->size() - 2) + extents->back() == offset) {
              extents->back() += length;
            } else {
              extents->push_back(offset);
              extents->push_back(length);
            }
            return 0;
          };
          // include_parent = 1: a clone's data that still lives in its parent counts.
          return rbd_diff_iterate2(image.handle, nullptr, 0, size, 1, 0, collect, out.get());
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array result = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); i++) result.Set(static_cast<uint32_t>(i), SafeNumber(env, (*out)[i]));
          return result;
        });
  }

  // readImage(image, offset, length): the bytes, a Buffer of exactly `length` (a read past what
  // the image holds is refused by librbd with EINVAL; holes read as zeros).
  Napi::Value ReadImage(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "image");
    uint64_t offset = SizeArg(info, 1, "offset");
    uint64_t length = SizeArg(info, 2, "length");
    if (length > (64u << 20)) throw Napi::RangeError::New(info.Env(), "length must be at most 64 MiB");
    auto out = std::make_shared<std::string>();
    return WithIo(
        info, "rbd_read2", name,
        [name, offset, length, out](rados_ioctx_t io, std::string& detail) -> int {
          Image image;
          int r = OpenImage(io, name, image, nullptr, true);
          if (r < 0) return r;
          out->resize(length);
          uint64_t done = 0;
          while (done < length) {
            ssize_t n = rbd_read2(image.handle, offset + done, length - done, out->data() + done,
                                  LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL);
            if (n < 0) return static_cast<int>(n);
            if (n == 0) {
              detail = "short read at " + std::to_string(offset + done);
              return -EIO;
            }
            done += static_cast<uint64_t>(n);
          }
          return 0;
        },
        [out](Napi::Env env) -> Napi::Value { return Napi::Buffer<char>::Copy(env, out->data(), out->size()); });
  }

  // writeImage(image, [{ offset, data }...]): each piece at its offset, on one open of the image
  // (the data is copied: the caller's buffers may change while the job runs), then a flush.
  Napi::Value WriteImage(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = StringArg(info, 0, "image");
    if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "pieces must be an array");
    Napi::Array list = info[1].As<Napi::Array>();
    auto pieces = std::make_shared<std::vector<std::pair<uint64_t, std::string>>>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value item = list.Get(i);
      if (!item.IsObject()) throw Napi::TypeError::New(env, "each piece must be { offset, data }");
      Napi::Object piece = item.As<Napi::Object>();
      Napi::Value offset = piece.Get("offset");
      Napi::Value data = piece.Get("data");
      if (!offset.IsNumber() || !data.IsTypedArray()) {
        throw Napi::TypeError::New(env, "each piece must be { offset: number, data: Uint8Array }");
      }
      double at = offset.As<Napi::Number>().DoubleValue();
      if (!(at >= 0 && at <= kMaxSafeInteger) || at != static_cast<double>(static_cast<uint64_t>(at))) {
        throw Napi::RangeError::New(env, "offset must be a whole number of bytes");
      }
      Napi::TypedArray bytes = data.As<Napi::TypedArray>();
      const char* start = static_cast<const char*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
      pieces->emplace_back(static_cast<uint64_t>(at), std::string(start, bytes.ByteLength()));
    }
    return WithIo(info, "rbd_write2", name, [name, pieces](rados_ioctx_t io, std::string& detail) -> int {
      Image image;
      int r = OpenImage(io, name, image, nullptr, false);
      if (r < 0) return r;
      for (const auto& [offset, bytes] : *pieces) {
        uint64_t done = 0;
        while (done < bytes.size()) {
          ssize_t n = rbd_write2(image.handle, offset + done, bytes.size() - done, bytes.data() + done,
                                 LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL);
          if (n < 0) {
            detail = "at offset " + std::to_string(offset + done);
            return static_cast<int>(n);
          }
          if (n == 0) {
            detail = "short write at " + std::to_string(offset + done);
            return -EIO;
          }
          done += static_cast<uint64_t>(n);
        }
      }
      return rbd_flush(image.handle);
    });
  }

  // A monitor command (JSON, as `ceph ... --format json` sends it); resolves with its output.
  Napi::Value MonCommand(const Napi::CallbackInfo& info) {
    std::string command = StringArg(info, 0, "command");
    if (rados_ == nullptr || closing_) return Rejected(info.Env(), "rados_mon_command", ENOTCONN, "not connected");
    rados_t rados = rados_;
    auto out = std::make_shared<std::string>();
    return Queue(
        info.Env(), "rados_mon_command", command,
        [rados, command, out](std::string& detail) {
          const char* commands[] = {command.c_str()};
          char* outbuf = nullptr;
          size_t outbuf_len = 0;
          char* outs = nullptr;
          size_t outs_len = 0;
          int r = rados_mon_command(rados, commands, 1, "", 0, &outbuf, &outbuf_len, &outs, &outs_len);
          if (outbuf != nullptr) out->assign(outbuf, outbuf_len);
          if (r < 0 && outs != nullptr) detail.assign(outs, outs_len);
          rados_buffer_free(outbuf);
          rados_buffer_free(outs);
          return r;
        },
        [out](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *out); });
  }

  std::string cluster_name_;
  std::string user_;
  std::string conf_path_;
  std::string keyring_;
  std::string pool_;
  std::vector<std::pair<std::string, std::string>> config_;
  rados_t rados_ = nullptr;
  rados_ioctx_t io_ = nullptr;
  bool connecting_ = false;
  bool closing_ = false;
  std::atomic<int> inflight_{0};
};

Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int major = 0, minor = 0, extra = 0;
  Napi::Object result = Napi::Object::New(env);
  rbd_version(&major, &minor, &extra);
  result.Set("librbd", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra));
  rados_version(&major, &minor, &extra);
  result.Set("librados", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra));
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Cluster", Cluster::Define(env));
  exports.Set("versions", Napi::Function::New(env, Versions));
  return exports;
}

}  // namespace

NODE_API_MODULE(rbd_native, Init)
