// Swift wrapper of libsnapfusion (over the CSnapFusion module of snapfusion.h).
//
//   let pipe = try Pipeline(path: "models/tiny-sd")   // threads: one per core unless threads: N
//   let image = try pipe.txt2img(GenerationOptions(prompt: "a photo of a cat", steps: 8, seed: 1))
//   try image.save(to: "cat.png")
//
// Objects free their native handle in deinit; a pipeline keeps its context alive and a job
// its pipeline, so deinit order never matters. Failures throw SnapFusionError with the
// library's message. Not compiled here (no Swift toolchain on the CI machine): see README.
import CSnapFusion
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// MARK: - Errors

public struct SnapFusionError: Error, CustomStringConvertible {
    public enum Code: UInt32 {
        case invalidArgument = 1, io, badModel, unsupported, outOfMemory, cancelled, backend, badState, internalError,
             notFound
        case unknown = 0xffff_ffff
    }

    public let code: Code
    /// The raw sf_status value (codes newer than this wrapper map to .unknown).
    public let status: UInt32
    /// The library's description of this failure (names the file, tensor or argument).
    public let message: String
    /// Pipeline.txt2imgBatch: the images finished before the failure.
    public internal(set) var images: [Image] = []
    /// A failed load: the problems it reported one by one (the library logs each at ERROR level)
    /// besides its message. An inspection (Pipeline.inspect) reports every problem it finds in the
    /// folder, and the message counts them and lists as many as fit; empty when the failure is its
    /// message alone.
    public internal(set) var problems: [String] = []
    public var description: String { "\(code): \(message)" }

    static func invalidArgument(_ message: String) -> SnapFusionError {
        SnapFusionError(code: .invalidArgument, status: SF_ERR_INVALID_ARGUMENT.rawValue, message: message)
    }
}

/// The error of a failed status, with the calling thread's message: sf_last_error, never
/// sf_context_last_error, which every thread of a context shares (with concurrent runs it may
/// hold another thread's failure).
func makeError(_ status: sf_status) -> SnapFusionError {
    var message = String(cString: sf_last_error())
    if message.isEmpty { message = String(cString: sf_status_string(status)) }
    return SnapFusionError(code: SnapFusionError.Code(rawValue: status.rawValue) ?? .unknown, status: status.rawValue,
                           message: message)
}

@inline(__always)
func check(_ status: sf_status) throws {
    if status == SF_OK { return }
    throw makeError(status)
}


public enum SnapFusion {
    public static var version: String { String(cString: sf_version()) }
    public static var abiVersion: Int { Int(sf_abi_version()) }
    /// True when the loaded library speaks the ABI this wrapper was compiled against.
    public static var abiMatches: Bool { sf_abi_version() == SF_ABI_VERSION }
}

// MARK: - Context

public enum LogLevel: UInt32 { case debug = 0, info, warn, error }

/// The ERROR messages of the calls made through Context.collecting, per thread: a thread's list
/// exists from its arm() to its take(), so messages of other calls are not kept.
private final class ErrorCollector {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var armed: [pthread_t: [String]] = [:]

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    func arm() {
        pthread_mutex_lock(mutex)
        armed[pthread_self()] = []
        pthread_mutex_unlock(mutex)
    }

    func add(_ message: String) {
        pthread_mutex_lock(mutex)
        let thread = pthread_self()
        if armed[thread] != nil { armed[thread]!.append(message) }
        pthread_mutex_unlock(mutex)
    }

    func take() -> [String] {
        pthread_mutex_lock(mutex)
        let messages = armed.removeValue(forKey: pthread_self()) ?? []
        pthread_mutex_unlock(mutex)
        return messages
    }
}

private final class LogBox {
    let handler: ((LogLevel, String) -> Void)?
    let errors: ErrorCollector
    init(_ handler: ((LogLevel, String) -> Void)?, errors: ErrorCollector) {
        self.handler = handler
        self.errors = errors
    }
}

private let logTrampoline: sf_log_fn = { user, level, message in
    guard let user = user, let message = message else { return }
    let box = Unmanaged<LogBox>.fromOpaque(user).takeUnretainedValue()
    let text = String(cString: message)
    if level.rawValue >= SF_LOG_ERROR.rawValue { box.errors.add(text) }
    box.handler?(LogLevel(rawValue: level.rawValue) ?? .error, text)
}

/// Threads, logging and error state shared by the pipelines made with it. Without a log handler
/// only the library's ERROR messages are taken, for the problems of a failed load
/// (SnapFusionError.problems).
public final class Context {
    let ptr: OpaquePointer
    private let errors = ErrorCollector()
    private var logBox: LogBox?  // the C side points at it

    public init(threads: Int? = nil) throws {
        var out: OpaquePointer?
        try check(sf_context_create(&out))
        ptr = out!
        try setLogHandler(nil)
        if let threads = threads { try setThreads(threads) }
    }

    deinit { sf_context_destroy(ptr) }

    public func setThreads(_ n: Int) throws {
        try check(sf_context_set_int(ptr, SF_PARAM_THREADS, Int64(n)))
    }

    public var threads: Int {
        var v: Int64 = 0
        _ = sf_context_get_int(ptr, SF_PARAM_THREADS, &v)
        return Int(v)
    }

    /// Receives the library's log (handler must not throw); nil stops logging (ERROR messages are
    /// still taken for SnapFusionError.problems). Not while runs of the context are in flight.
    public func setLogHandler(level: LogLevel = .info, _ handler: ((LogLevel, String) -> Void)?) throws {
        let box = LogBox(handler, errors: errors)
        try check(sf_context_set_log_callback(ptr, logTrampoline, Unmanaged.passUnretained(box).toOpaque()))
        logBox = box  // the previous box goes: the C side points at the new one
        let least = handler == nil ? LogLevel.error : level
        try check(sf_context_set_int(ptr, SF_PARAM_LOG_LEVEL, Int64(least.rawValue)))
    }

    /// Makes a C call of this context (call returns its status) and throws its failure, with the
    /// ERROR messages logged during the call besides the failure's own as `problems`.
    func collecting(_ call: () -> sf_status) throws {
        errors.arm()
        let status = call()
        let messages = errors.take()
        if status == SF_OK { return }
        var error = makeError(status)
        var problems = messages
        if let own = problems.firstIndex(of: error.message) { problems.remove(at: own) }
        error.problems = problems
        throw error
    }

    /// The last failure of any call made with this context: shared by all its threads (with
    /// concurrent runs, use the error each call throws instead).
    public var lastError: String { String(cString: sf_context_last_error(ptr)) }
}

// MARK: - Params

final class Params {
    let ptr: OpaquePointer

    init() throws {
        var out: OpaquePointer?
        try check(sf_params_create(&out))
        ptr = out!
    }

    deinit { sf_params_destroy(ptr) }

    func set(_ key: sf_param, _ value: Int64?) throws {
        if let v = value { try check(sf_params_set_int(ptr, key, v)) }
    }

    func set(_ key: sf_param, _ value: Double?) throws {
        if let v = value { try check(sf_params_set_float(ptr, key, v)) }
    }

    func set(_ key: sf_param, _ value: String?) throws {
        if let v = value { try check(sf_params_set_string(ptr, key, v)) }
    }

    func set(_ key: sf_param_array, _ values: [Float]?) throws {
        if let v = values { try check(sf_params_set_floats(ptr, key, v, v.count)) }
    }
}

// MARK: - Images

/// An RGB8 image made by the library.
public final class Image {
    let ptr: OpaquePointer

    init(_ ptr: OpaquePointer) { self.ptr = ptr }

    deinit { sf_image_destroy(ptr) }

    /// Reads an 8-bit RGB or RGBA PNG.
    public static func open(_ path: String) throws -> Image {
        var out: OpaquePointer?
        try check(sf_image_read_png(path, &out))
        return Image(out!)
    }

    public var width: Int { Int(sf_image_width(ptr)) }
    public var height: Int { Int(sf_image_height(ptr)) }

    /// Packed RGB8, rows of width*3 bytes, top row first.
    public var pixels: [UInt8] {
        let row = width * 3
        var buf = [UInt8](repeating: 0, count: row * height)
        let status = buf.withUnsafeMutableBufferPointer { sf_image_copy(ptr, $0.baseAddress, $0.count, row, nil) }
        precondition(status == SF_OK, "sf_image_copy failed on a buffer of the right size")
        return buf
    }

    /// The generation parameters in A1111's "parameters" text form ("" if none).
    public var parameters: String { String(cString: sf_image_parameters(ptr)) }

    /// The seed in `parameters` ("Seed: N" on its settings line: the one drawn for
    /// GenerationOptions.randomSeed, S + i for image i of a batch); nil if none.
    public var seed: UInt64? {
        let settings = parameters.split(separator: "\n", omittingEmptySubsequences: false).last ?? ""
        for field in settings.split(separator: ",") {
            let f = field.drop(while: { $0 == " " })
            if f.hasPrefix("Seed: ") { return UInt64(f.dropFirst(6)) }
        }
        return nil
    }

    /// Writes a PNG with the parameters as a "parameters" text chunk.
    public func save(to path: String) throws { try check(sf_image_write_png(ptr, path)) }
}

// MARK: - Generation options

public enum Sampler: UInt32 {
    case `default` = 0, ddim, pndm, euler, eulerAncestral, dpmpp2m, lcm

    public init?(name: String) {
        let v = sf_sampler_from_name(name)
        if v == SF_SAMPLER_DEFAULT && name != "default" { return nil }
        self.init(rawValue: v.rawValue)
    }

    public var name: String? { sf_sampler_name(sf_sampler(rawValue: rawValue)).map { String(cString: $0) } }
}

/// The generation parameters; nil means the library's default.
public struct GenerationOptions {
    /// seed: randomSeed (SF_SEED_RANDOM, -1 as unsigned bits) draws one; Job.seed and Image.seed tell which.
    public static let randomSeed = UInt64(bitPattern: Int64(-1))

    public var prompt: String?
    public var negativePrompt: String?
    public var width: Int?
    public var height: Int?
    public var steps: Int?
    public var guidanceScale: Double?
    public var seed: UInt64?
    public var sampler: Sampler?
    public var karrasSigmas: Bool?
    public var clipSkip: Int?
    public var strength: Double?
    public var initImage: Image?
    public var latents: [Float]?
    public var promptEmbeds: [Float]?
    public var negativeEmbeds: [Float]?
    public var promptSyntax: PromptSyntax?

    public init(prompt: String? = nil, negativePrompt: String? = nil, width: Int? = nil, height: Int? = nil,
                steps: Int? = nil, guidanceScale: Double? = nil, seed: UInt64? = nil, sampler: Sampler? = nil) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.width = width
        self.height = height
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.seed = seed
        self.sampler = sampler
    }

    func makeParams() throws -> Params {
        let p = try Params()
        try p.set(SF_PARAM_PROMPT, prompt)
        try p.set(SF_PARAM_NEGATIVE_PROMPT, negativePrompt)
        try p.set(SF_PARAM_WIDTH, width.map { Int64($0) })
        try p.set(SF_PARAM_HEIGHT, height.map { Int64($0) })
        try p.set(SF_PARAM_STEPS, steps.map { Int64($0) })
        try p.set(SF_PARAM_GUIDANCE_SCALE, guidanceScale)
        try p.set(SF_PARAM_SEED, seed.map { Int64(bitPattern: $0) })
        try p.set(SF_PARAM_SAMPLER, sampler.map { Int64($0.rawValue) })
        try p.set(SF_PARAM_KARRAS_SIGMAS, karrasSigmas.map { Int64($0 ? 1 : 0) })
        try p.set(SF_PARAM_CLIP_SKIP, clipSkip.map { Int64($0) })
        try p.set(SF_PARAM_STRENGTH, strength)
        try p.set(SF_PARAM_LATENTS, latents)
        try p.set(SF_PARAM_PROMPT_EMBEDS, promptEmbeds)
        try p.set(SF_PARAM_NEGATIVE_EMBEDS, negativeEmbeds)
        try p.set(SF_PARAM_PROMPT_SYNTAX, promptSyntax.map { Int64($0.rawValue) })
        if let image = initImage {
            let rgb = image.pixels
            try check(sf_params_set_init_image(p.ptr, rgb, UInt32(image.width), UInt32(image.height), image.width * 3))
        }
        return p
    }
}

// MARK: - Loading, and model files in memory

/// sf_network bits, for LoadOptions.components.
public struct Networks: OptionSet {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let textEncoder = Networks(rawValue: 1)
    public static let unet = Networks(rawValue: 2)
    public static let vaeDecoder = Networks(rawValue: 4)
    public static let vaeEncoder = Networks(rawValue: 8)
    public static let taesdDecoder = Networks(rawValue: 16)
    public static let taesdEncoder = Networks(rawValue: 32)
}

/// sf_weight_type (LoadOptions.weights): how convolution and linear weights are held in memory.
/// .default keeps the checkpoint's type (f16 for F16 tensors, e.g. variant "fp16", else f32); .f16
/// halves the memory (exact for an fp16 checkpoint, rounded to nearest even for an f32 one); .q8
/// quarters it (int8 per output channel; the layers next to the latents and the pixels and the time
/// embedding kept in f16). Activations are always f32. See Pipeline.weightBytes.
/// How prompts are read (SF_PARAM_PROMPT_SYNTAX): `.plain` as diffusers (the default), `.a1111` with
/// stable-diffusion-webui's (word:1.3) weights, BREAK and long prompts in chunks of 75 tokens.
public enum PromptSyntax: UInt32 {
    case plain = 0, a1111
}

public enum WeightType: UInt32 {
    case `default` = 0, f32, f16, q8

    /// "default", "f32", "f16" or "q8" (any case), as the CLIs' --weights; nil for another name.
    public init?(name: String) {
        switch name.lowercased() {
        case "default": self = .default
        case "f32": self = .f32
        case "f16": self = .f16
        case "q8": self = .q8
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .default: return "default"
        case .f32: return "f32"
        case .f16: return "f16"
        case .q8: return "q8"
        }
    }
}

/// sf_memory: the figures of a memory estimate (Pipeline.estimateMemory), in bytes.
public enum MemoryFigure: UInt32, CaseIterable {
    /// Expected peak resident set of the process from the load to the end of the generation.
    case peak = 0
    /// Packed weights resident at that peak.
    case weights
    /// Activation workspace resident at that peak.
    case workspace
    /// The rest of the peak: weights being packed (staging, checkpoint pages), the run's buffers, a base.
    case other
    /// Packed weights of all the pipeline's networks.
    case weightsTotal
    /// The largest workspace the generation plans.
    case workspaceRun
}

/// What a generation will need, in bytes (Pipeline.estimateMemory): peak = weights + workspace +
/// other, the process's expected peak resident set from the load to the end of the generation (the
/// library's share plus a fixed base for code and libraries), weights and workspace resident at that
/// peak; weightsTotal the packed weights of all the networks (the full load's weightBytes);
/// workspaceRun the largest workspace the generation plans (arenaBytes once it ran). An estimate from
/// the networks' packed sizes and planned workspaces, not a measurement.
public struct MemoryEstimate: Equatable {
    public let peak: Int
    public let weights: Int
    public let workspace: Int
    public let other: Int
    public let weightsTotal: Int
    public let workspaceRun: Int

    public subscript(figure: MemoryFigure) -> Int {
        switch figure {
        case .peak: return peak
        case .weights: return weights
        case .workspace: return workspace
        case .other: return other
        case .weightsTotal: return weightsTotal
        case .workspaceRun: return workspaceRun
        }
    }
}

/// The options of loading a pipeline (sf_pipeline_load, sf_pipeline_load_files); nil and false
/// mean the library's default.
public struct LoadOptions {
    /// Prefer *.VARIANT.safetensors, e.g. "fp16".
    public var variant: String?
    /// Ignore the checkpoints, use seeded random weights (the files may be configs only).
    public var randomWeights: Bool
    public var randomSeed: UInt64?
    /// Check the model without loading it (see Pipeline.inspect).
    public var inspectOnly: Bool
    /// The networks to build (default: all); without .textEncoder the tokenizer may be absent.
    public var components: Networks?
    /// A tokenizer folder used instead of the model's: a path in the file system, also for Files.
    public var tokenizerPath: String?
    /// A TAESD folder for previews and decoding: a path in the file system, also for Files.
    public var taesdPath: String?
    /// How the networks' weights are held (nil: as the checkpoint stores them).
    public var weights: WeightType?
    /// One network resident at a time, each packed when a run needs it and freed when another one
    /// is needed (less memory, the packing time of every network per generation).
    public var lowMemory: Bool
    /// For a single-file checkpoint (one .safetensors in the original LDM layout): the diffusers
    /// folder whose configs, scheduler and tokenizer describe it (nil: inferred as SD-1.x's).
    public var configPath: String?
    /// LoRA files (kohya/A1111 or diffusers/PEFT) merged into the UNet and text encoder at load,
    /// each with its scale (SF_PARAM_LORAS); their deltas add up.
    public var loras: [(path: String, scale: Double)]

    public init(variant: String? = nil, randomWeights: Bool = false, randomSeed: UInt64? = nil,
                inspectOnly: Bool = false, components: Networks? = nil, tokenizerPath: String? = nil,
                taesdPath: String? = nil, weights: WeightType? = nil, lowMemory: Bool = false,
                configPath: String? = nil, loras: [(path: String, scale: Double)] = []) {
        self.variant = variant
        self.randomWeights = randomWeights
        self.randomSeed = randomSeed
        self.inspectOnly = inspectOnly
        self.components = components
        self.tokenizerPath = tokenizerPath
        self.taesdPath = taesdPath
        self.weights = weights
        self.lowMemory = lowMemory
        self.configPath = configPath
        self.loras = loras
    }

    func makeParams() throws -> Params {
        let p = try Params()
        try p.set(SF_PARAM_VARIANT, variant)
        if randomWeights { try p.set(SF_PARAM_RANDOM_WEIGHTS, Int64(1)) }
        try p.set(SF_PARAM_RANDOM_SEED, randomSeed.map { Int64(bitPattern: $0) })
        if inspectOnly { try p.set(SF_PARAM_INSPECT_ONLY, Int64(1)) }
        try p.set(SF_PARAM_COMPONENTS, components.map { Int64($0.rawValue) })
        try p.set(SF_PARAM_TOKENIZER_PATH, tokenizerPath)
        try p.set(SF_PARAM_TAESD_PATH, taesdPath)
        try p.set(SF_PARAM_WEIGHT_TYPE, weights.map { Int64($0.rawValue) })
        if lowMemory { try p.set(SF_PARAM_LOW_MEMORY, Int64(1)) }
        try p.set(SF_PARAM_CONFIG_PATH, configPath)
        if !loras.isEmpty {
            try p.set(SF_PARAM_LORAS, loras.map { "\($0.path)\t\($0.scale)" }.joined(separator: "\n"))
        }
        return p
    }
}

/// A set of model files held in memory (sf_files): a diffusers folder's files by their relative
/// '/'-separated paths ("model_index.json", "unet/config.json",
/// "unet/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json", ...), for apps whose weights
/// are not in the file system (an asset catalog, a download kept in memory). Load it with
/// `Pipeline(files:options:)`.
///
/// `add(path:data:)` copies the bytes: the set may go right after loading, the pipelines keep what
/// they need. `add(path:bytesNoCopy:owner:)` lends them (e.g. a memory-mapped asset): the set keeps
/// `owner`, and a Pipeline loaded from a set with lent bytes keeps the set, so the bytes stay valid
/// until the set and every such pipeline are gone (snapfusion.h allows destroying a set under live
/// pipelines for copied files only). The library never writes them.
///
/// Each set is used by one thread at a time.
public final class Files {
    let ptr: OpaquePointer
    /// The owners of lent bytes (every one ever lent: a replaced file may still be read by a pipeline).
    private var owners: [AnyObject] = []
    /// True once bytes were lent: pipelines loaded from the set then keep it alive.
    public private(set) var borrowed = false

    public init() throws {
        var out: OpaquePointer?
        try check(sf_files_create(&out))
        ptr = out!
    }

    // Runs after every Pipeline that keeps this set is gone (they hold it); then the owners go.
    deinit { sf_files_destroy(ptr) }

    /// Adds (or replaces) the file at path (relative, '/'-separated, no "..") with a copy of data:
    /// [UInt8], ArraySlice<UInt8>, Foundation's Data, ... Throws .invalidArgument (naming the path) for
    /// a bad path, or one that is a folder of the set's files or lies under one.
    public func add<Bytes: Collection>(path: String, data: Bytes) throws where Bytes.Element == UInt8 {
        let status: sf_status? = data.withContiguousStorageIfAvailable { buf in
            sf_files_add(ptr, path, UnsafeRawPointer(buf.baseAddress), buf.count, 1)
        }
        if let status = status {
            try check(status)
            return
        }
        let bytes = Array(data)  // not contiguous: copied here first
        try bytes.withUnsafeBytes { buf in
            try check(sf_files_add(ptr, path, buf.baseAddress, buf.count, 1))
        }
    }

    /// Adds (or replaces) the file at path with bytes that are lent, not copied (zero-copy for large
    /// safetensors files, e.g. an `NSData(contentsOfFile:options: .alwaysMapped)` passed as owner).
    /// The bytes must stay valid and unchanged for as long as owner lives; the set keeps owner, and
    /// every Pipeline loaded from the set keeps the set.
    public func add(path: String, bytesNoCopy bytes: UnsafeRawBufferPointer, owner: AnyObject) throws {
        try check(sf_files_add(ptr, path, bytes.baseAddress, bytes.count, 0))
        owners.append(owner)
        borrowed = true
    }
}

// MARK: - Pipelines

private final class ProgressBox {
    let callback: (Int, Int) -> Bool
    init(_ callback: @escaping (Int, Int) -> Bool) { self.callback = callback }
}

private let progressTrampoline: sf_progress_fn = { user, step, total in
    guard let user = user else { return 0 }
    let box = Unmanaged<ProgressBox>.fromOpaque(user).takeUnretainedValue()
    return box.callback(Int(step), Int(total)) ? 1 : 0
}

/// The VAE or TAESD, for decode and encodeImage.
public enum Autoencoder { case vae, taesd }

/// sf_layout: the order of Job.imageF32's floats.
public enum Layout: UInt32 {
    case nchw = 0  // [3, H, W]: diffusers' output_type "pt"
    case nhwc = 1  // [H, W, 3]: diffusers' output_type "np"
}

private func coderFlags(unscaled: Bool, raw: Bool) -> UInt32 {
    (unscaled ? UInt32(SF_LATENTS_UNSCALED) : 0) | (raw ? UInt32(SF_IMAGE_RAW) : 0)
}

/// A loaded diffusers model folder. Runs on one pipeline (txt2img, jobs, building blocks) may go
/// on concurrently from different threads and give the same results as alone; they share the
/// context's worker threads. Each Job is used by one thread at a time (cancel() excepted).
public final class Pipeline {
    public let context: Context
    let ptr: OpaquePointer
    /// The set of lent bytes this pipeline was loaded from (it may read them): released after
    /// sf_pipeline_destroy, in deinit. nil for a folder or a set of copied files.
    private let files: Files?
    /// True for a pipeline that was checked, not loaded (Pipeline.inspect).
    public let isInspectOnly: Bool

    private init(context: Context, ptr: OpaquePointer, files: Files?, inspectOnly: Bool) {
        self.context = context
        self.ptr = ptr
        self.files = files
        self.isInspectOnly = inspectOnly
    }

    /// Loads a diffusers folder; without a context the pipeline makes its own.
    public convenience init(path: String, context: Context? = nil, threads: Int? = nil, variant: String? = nil,
                            randomWeights: Bool = false, weights: WeightType? = nil, lowMemory: Bool = false) throws {
        try self.init(path: path, options: LoadOptions(variant: variant, randomWeights: randomWeights, weights: weights,
                                                       lowMemory: lowMemory),
                      context: context, threads: threads)
    }

    /// Loads a diffusers folder with every load option; without a context the pipeline makes its own.
    public convenience init(path: String, options: LoadOptions, context: Context? = nil, threads: Int? = nil) throws {
        let ctx = try context ?? Context()
        if let threads = threads { try ctx.setThreads(threads) }
        let params = try options.makeParams()
        var out: OpaquePointer?
        try withExtendedLifetime(params) {
            try ctx.collecting { sf_pipeline_load(ctx.ptr, path, params.ptr, &out) }
        }
        self.init(context: ctx, ptr: out!, files: nil, inspectOnly: options.inspectOnly)
    }

    /// Loads a model from a set of files in memory (sf_pipeline_load_files), with the options of a
    /// folder (tokenizerPath and taesdPath stay paths in the file system). Messages name the set's
    /// files "memory:PATH" ("memory:model_index.json is missing"). A set of copied files may go
    /// right after; a pipeline loaded from lent bytes keeps the set (and their owners) alive.
    public convenience init(files: Files, options: LoadOptions = LoadOptions(), context: Context? = nil,
                            threads: Int? = nil) throws {
        let ctx = try context ?? Context()
        if let threads = threads { try ctx.setThreads(threads) }
        let params = try options.makeParams()
        var out: OpaquePointer?
        try withExtendedLifetime(params) {
            try ctx.collecting { sf_pipeline_load_files(ctx.ptr, files.ptr, params.ptr, &out) }
        }
        self.init(context: ctx, ptr: out!, files: files.borrowed ? files : nil, inspectOnly: options.inspectOnly)
    }

    /// Checks a model folder without loading it (SF_PARAM_INSPECT_ONLY), with the options of a load:
    /// every config parsed, every network's architecture built and every checkpoint tensor checked
    /// against it (names, shapes, types, tensors left over), without reading or packing a weight. A
    /// folder with problems throws (.badModel, usually) with all of them in the error's `problems`
    /// (its message counts them and lists as many as fit). The pipeline returned runs nothing
    /// (generating throws .badState; isInspectOnly is true) but answers the shape queries,
    /// weightBytes, weightType and estimateMemory as the load with the same options would: inspect
    /// first to know whether a model fits (e.g. against os_proc_available_memory()) before anything
    /// is packed.
    public static func inspect(path: String, options: LoadOptions = LoadOptions(), context: Context? = nil,
                               threads: Int? = nil) throws -> Pipeline {
        var inspecting = options
        inspecting.inspectOnly = true
        return try Pipeline(path: path, options: inspecting, context: context, threads: threads)
    }

    /// inspect(path:...) for a set of files in memory.
    public static func inspect(files: Files, options: LoadOptions = LoadOptions(), context: Context? = nil,
                               threads: Int? = nil) throws -> Pipeline {
        var inspecting = options
        inspecting.inspectOnly = true
        return try Pipeline(files: files, options: inspecting, context: context, threads: threads)
    }

    deinit { sf_pipeline_destroy(ptr) }

    private func info(_ key: sf_info) throws -> Int64 {
        var v: Int64 = 0
        try check(sf_pipeline_get_int(ptr, key, &v))
        return v
    }

    public var textTokens: Int { Int((try? info(SF_INFO_TEXT_TOKENS)) ?? 0) }
    public var textHidden: Int { Int((try? info(SF_INFO_TEXT_HIDDEN)) ?? 0) }
    public var latentChannels: Int { Int((try? info(SF_INFO_LATENT_CHANNELS)) ?? 0) }
    /// Image sides must be multiples of this (the decoder's factor times 2^(the UNet's
    /// down-samplings); 64 for SD-1.x).
    public var sizeMultiple: Int { Int((try? info(SF_INFO_SIZE_MULTIPLE)) ?? 0) }
    /// Runs in flight now on this pipeline (jobs alive, calls in progress on any thread).
    public var activeRuns: Int { Int((try? info(SF_INFO_ACTIVE_RUNS)) ?? 0) }
    /// Image pixels per latent pixel of the pipeline's decoder (8 for SD-1.x).
    public var scaleFactor: Int { Int((try? info(SF_INFO_SCALE_FACTOR)) ?? 8) }
    /// Bytes the networks' weights take as loaded (SF_INFO_WEIGHT_BYTES): packed convolution and
    /// linear weights in their WeightType, norms, embeddings. With lowMemory, those of the networks
    /// resident now (none right after loading).
    public var weightBytes: Int { Int((try? info(SF_INFO_WEIGHT_BYTES)) ?? 0) }
    /// The WeightType the UNet's layers are held in: .f32, .f16 or .q8, never .default (an fp16
    /// checkpoint's default is .f16) (SF_INFO_WEIGHT_TYPE); nil for a pipeline without a UNet.
    public var weightType: WeightType? {
        (try? info(SF_INFO_WEIGHT_TYPE)).flatMap { WeightType(rawValue: UInt32($0)) }
    }
    /// Activation memory held by the runs' workspaces (SF_INFO_ARENA_BYTES): one per run in flight
    /// plus one kept for the next run.
    public var arenaBytes: Int { Int((try? info(SF_INFO_ARENA_BYTES)) ?? 0) }

    /// The memory a generation with these options (what counts: the size, guidanceScale, initImage
    /// and the batch count; the prompt may be left out) will need on this pipeline as loaded (weight
    /// type, low-memory mode) and with its context's thread count (sf_pipeline_estimate_memory).
    /// Works on an inspected pipeline (Pipeline.inspect), which read no weight. The same options give
    /// the same estimate on an inspected and on a loaded pipeline. Throws .invalidArgument for sides
    /// that are no multiples of sizeMultiple, .badState for a pipeline without a UNet or decoder.
    public func estimateMemory(_ options: GenerationOptions = GenerationOptions(),
                               batchCount: Int? = nil) throws -> MemoryEstimate {
        let params = try options.makeParams()
        try params.set(SF_PARAM_BATCH_COUNT, batchCount.map { Int64($0) })
        var figures = [Int](repeating: 0, count: MemoryFigure.allCases.count)
        for figure in MemoryFigure.allCases {  // one figure per call
            var bytes: Int64 = 0
            try check(sf_pipeline_estimate_memory(ptr, params.ptr, sf_memory(rawValue: figure.rawValue), &bytes))
            figures[Int(figure.rawValue)] = Int(bytes)
        }
        return MemoryEstimate(peak: figures[0], weights: figures[1], workspace: figures[2], other: figures[3],
                              weightsTotal: figures[4], workspaceRun: figures[5])
    }
    private var hasTextEncoder: Bool {
        (((try? info(SF_INFO_NETWORKS)) ?? 0) & Int64(SF_NET_TEXT_ENCODER.rawValue)) != 0
    }

    /// Text (or JSON) description of the model.
    public func describe(json: Bool = false) throws -> String {
        let format = json ? SF_FORMAT_JSON : SF_FORMAT_TEXT
        var needed = 0
        try check(sf_pipeline_describe(ptr, format, nil, 0, &needed))
        var buf = [CChar](repeating: 0, count: needed)
        try buf.withUnsafeMutableBufferPointer {
            try check(sf_pipeline_describe(ptr, format, $0.baseAddress, $0.count, &needed))
        }
        return String(cString: buf)
    }

    public func tokenize(_ prompt: String) throws -> [Int32] {
        var ids = [Int32](repeating: 0, count: textTokens)
        try ids.withUnsafeMutableBufferPointer {
            try check(sf_tokenize(ptr, prompt, $0.baseAddress, $0.count, nil))
        }
        return ids
    }

    /// Text embedding [tokens, hidden] of one prompt.
    public func encodePrompt(_ prompt: String, clipSkip: Int = 0) throws -> [Float] {
        var out = [Float](repeating: 0, count: textTokens * textHidden)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_encode_prompt(ptr, prompt, Int32(clipSkip), $0.baseAddress, $0.count))
        }
        return out
    }

    /// The vocabulary entry of a token id in the tokenizer's byte-level form ("cat</w>").
    public func tokenText(_ id: Int32) throws -> String {
        var needed = 0
        try check(sf_token_text(ptr, id, nil, 0, &needed))
        var buf = [CChar](repeating: 0, count: needed)
        try buf.withUnsafeMutableBufferPointer {
            try check(sf_token_text(ptr, id, $0.baseAddress, $0.count, &needed))
        }
        return String(cString: buf)
    }

    /// One UNet evaluation: latents NCHW [batch, C, height, width], one timestep per item, text
    /// embeddings [batch, tokens, hidden]. Every array crosses with its size (sf_unet_predict_v2):
    /// one of the wrong size throws .invalidArgument naming the size expected.
    public func unetPredict(latents: [Float], batch: Int, height: Int, width: Int, timesteps: [Float],
                            textEmbeddings: [Float]) throws -> [Float] {
        var out = [Float](repeating: 0, count: latents.count)
        // Without a text encoder its width is unknown: the prompt length the library makes is
        // assumed (the library checks the count against batch * tokens * the UNet's width).
        let per = hasTextEncoder ? batch * textHidden : 0
        let tokens = per > 0 ? max(1, textEmbeddings.count / per) : textTokens
        try out.withUnsafeMutableBufferPointer {
            try check(sf_unet_predict_v2(ptr, latents, latents.count, batch, height, width, timesteps, timesteps.count,
                                         textEmbeddings, textEmbeddings.count, tokens, $0.baseAddress, $0.count))
        }
        return out
    }

    /// Latents [batch, C, h, w] (pipeline space unless unscaled) -> image [batch, 3, 8h, 8w] in
    /// [-1, 1] (TAESD's [0, 1] with raw). Sizes are checked by the library (sf_decode_latents_v2).
    public func decode(latents: [Float], batch: Int, height: Int, width: Int, decoder: Autoencoder = .vae,
                       unscaled: Bool = false, raw: Bool = false) throws -> [Float] {
        let f = scaleFactor
        var out = [Float](repeating: 0, count: batch * 3 * f * height * f * width)
        let net = decoder == .vae ? SF_NET_VAE_DECODER : SF_NET_TAESD_DECODER
        let flags = coderFlags(unscaled: unscaled, raw: raw)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_decode_latents_v2(ptr, net, latents, latents.count, batch, height, width, flags,
                                           $0.baseAddress, $0.count))
        }
        return out
    }

    /// Image NCHW [batch, 3, height, width] in [-1, 1] (TAESD's [0, 1] with raw) -> latent mean and
    /// log-variance (nil for TAESD) [batch, C, height/8, width/8], in pipeline space unless
    /// unscaled. Sizes are checked by the library (sf_encode_image_v2).
    public func encodeImage(_ image: [Float], batch: Int, height: Int, width: Int, encoder: Autoencoder = .vae,
                            unscaled: Bool = false, raw: Bool = false) throws -> (mean: [Float], logvar: [Float]?) {
        let f = scaleFactor
        let count = batch * latentChannels * (height / f) * (width / f)
        let flags = coderFlags(unscaled: unscaled, raw: raw)
        var mean = [Float](repeating: 0, count: count)
        if encoder == .taesd {
            try mean.withUnsafeMutableBufferPointer { m in
                try check(sf_encode_image_v2(ptr, SF_NET_TAESD_ENCODER, image, image.count, batch, height, width, flags,
                                             m.baseAddress, m.count, nil, 0))
            }
            return (mean, nil)
        }
        var logvar = [Float](repeating: 0, count: count)
        try mean.withUnsafeMutableBufferPointer { m in
            try logvar.withUnsafeMutableBufferPointer { l in
                try check(sf_encode_image_v2(ptr, SF_NET_VAE_ENCODER, image, image.count, batch, height, width, flags,
                                             m.baseAddress, m.count, l.baseAddress, l.count))
            }
        }
        return (mean, logvar)
    }

    /// One image. progress(step, total) runs after each step; returning true stops the
    /// run (SnapFusionError .cancelled).
    public func txt2img(_ options: GenerationOptions, progress: ((Int, Int) -> Bool)? = nil) throws -> Image {
        let params = try options.makeParams()
        var out: OpaquePointer?
        let status: sf_status
        if let progress = progress {
            let box = ProgressBox(progress)
            status = withExtendedLifetime(box) {
                sf_generate(ptr, params.ptr, progressTrampoline, Unmanaged.passUnretained(box).toOpaque(), &out)
            }
        } else {
            status = sf_generate(ptr, params.ptr, nil, nil, &out)
        }
        try check(status)
        return Image(out!)
    }

    /// count images from consecutive seeds S, S+1, ... (S = options.seed, or one drawn for
    /// GenerationOptions.randomSeed), made one after another (sf_generate_batch): image i equals
    /// txt2img with seed S + i. progress sees the steps of the whole batch. A failure throws a
    /// SnapFusionError whose `images` are the ones finished before it.
    public func txt2imgBatch(_ options: GenerationOptions, count: Int,
                             progress: ((Int, Int) -> Bool)? = nil) throws -> [Image] {
        let params = try options.makeParams()
        try params.set(SF_PARAM_BATCH_COUNT, Int64(count))
        let capacity = max(count, 1)  // the library checks the count against it (and rejects < 1)
        var outs = [OpaquePointer?](repeating: nil, count: capacity)
        var made = 0
        let status: sf_status = outs.withUnsafeMutableBufferPointer { buf in
            if let progress = progress {
                let box = ProgressBox(progress)
                return withExtendedLifetime(box) {
                    sf_generate_batch(ptr, params.ptr, progressTrampoline, Unmanaged.passUnretained(box).toOpaque(),
                                      buf.baseAddress, buf.count, &made)
                }
            }
            return sf_generate_batch(ptr, params.ptr, nil, nil, buf.baseAddress, buf.count, &made)
        }
        // The finished images are the caller's whatever the status.
        let images = outs.prefix(min(made, capacity)).compactMap { $0 }.map { Image($0) }
        if status != SF_OK {
            var error = makeError(status)
            error.images = images
            throw error
        }
        return images
    }

    /// Starts a step-wise generation.
    public func start(_ options: GenerationOptions) throws -> Job {
        let params = try options.makeParams()
        var out: OpaquePointer?
        try check(sf_job_start(ptr, params.ptr, &out))
        return Job(pipeline: self, ptr: out!)
    }

    /// The steps of a generation as an AsyncSequence; the last element carries the image.
    /// Cancelling the consuming Task cancels the job before its next step.
    public func steps(_ options: GenerationOptions) -> GenerationSteps {
        GenerationSteps(pipeline: self, options: options)
    }

    /// Thread-safe: cancels whatever the pipeline is running now.
    public func cancel() { sf_pipeline_cancel(ptr) }
}

/// One finished denoising step.
public struct Step {
    public let index: Int
    public let total: Int
    public let job: Job
    /// The decoded image, on the last step only.
    public let image: Image?

    public func latents() throws -> [Float] { try job.latents() }
    public func preview() throws -> Image { try job.preview() }
}

/// A running generation (Pipeline.start).
public final class Job {
    public let pipeline: Pipeline
    let ptr: OpaquePointer
    public private(set) var image: Image?

    init(pipeline: Pipeline, ptr: OpaquePointer) {
        self.pipeline = pipeline
        self.ptr = ptr
    }

    deinit { sf_job_destroy(ptr) }

    public var stepsDone: Int { Int(sf_job_steps_done(ptr)) }
    public var latentCount: Int { Int(sf_job_latent_count(ptr)) }
    public var stepsTotal: Int { Int(sf_job_steps_total(ptr)) }
    /// The seed the job draws its noise from (the one drawn for GenerationOptions.randomSeed).
    public var seed: UInt64 { sf_job_seed(ptr) }

    /// The final image as floats in [0, 1] before 8-bit rounding ((x/2 + 0.5) clamped, as
    /// diffusers' postprocess), NCHW [3, H, W] or NHWC [H, W, 3]; after finish() (.badState before).
    public func imageF32(layout: Layout = .nchw) throws -> [Float] {
        var out = [Float](repeating: 0, count: Int(sf_job_image_count(ptr)))
        try out.withUnsafeMutableBufferPointer {
            try check(sf_job_image_f32(ptr, sf_layout(rawValue: layout.rawValue), $0.baseAddress, $0.count))
        }
        return out
    }

    /// Runs one step (the last one also decodes the image).
    public func step() throws -> Step {
        try check(sf_job_step(ptr))
        let done = stepsDone, total = stepsTotal
        var finished: Image? = nil
        if done == total { finished = try finish() }
        return Step(index: done, total: total, job: self, image: finished)
    }

    public func latents() throws -> [Float] {
        var out = [Float](repeating: 0, count: latentCount)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_job_latents(ptr, $0.baseAddress, $0.count))
        }
        return out
    }

    public func preview() throws -> Image {
        var out: OpaquePointer?
        try check(sf_job_preview(ptr, &out))
        return Image(out!)
    }

    /// Runs the remaining steps and decodes.
    public func finish() throws -> Image {
        if let image = image { return image }
        var out: OpaquePointer?
        try check(sf_job_finish(ptr, &out))
        let made = Image(out!)
        image = made
        return made
    }

    /// Thread-safe: the running or next step throws .cancelled.
    public func cancel() { sf_job_cancel(ptr) }
}

public struct GenerationSteps: AsyncSequence {
    public typealias Element = Step
    let pipeline: Pipeline
    let options: GenerationOptions

    public struct AsyncIterator: AsyncIteratorProtocol {
        let pipeline: Pipeline
        let options: GenerationOptions
        var job: Job?

        public mutating func next() async throws -> Step? {
            if job == nil { job = try pipeline.start(options) }
            guard let job = job, job.stepsDone < job.stepsTotal else { return nil }
            if Task.isCancelled { job.cancel() }
            await Task.yield()  // steps block: let other tasks of the executor run between them
            return try job.step()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(pipeline: pipeline, options: options, job: nil)
    }
}

// MARK: - Random numbers and schedules

/// PyTorch's CPU generator: randn(n) == torch.randn(n, generator=torch.Generator().manual_seed(seed)).
public final class Rng {
    let ptr: OpaquePointer

    public init(seed: UInt64, scalarKernel: Bool = false) throws {
        var out: OpaquePointer?
        try check(sf_rng_create(scalarKernel ? SF_RNG_TORCH_CPU_SCALAR : SF_RNG_TORCH_CPU, seed, &out))
        ptr = out!
    }

    deinit { sf_rng_destroy(ptr) }

    public func randn(_ n: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBufferPointer { try check(sf_rng_randn(ptr, $0.baseAddress, $0.count)) }
        return out
    }
}

/// sf_schedule_table.
public enum ScheduleTable: UInt32 { case betas = 1, alphasCumprod = 2 }

/// A sampler on its own (diffusers' arithmetic), for hand-written denoising loops.
public final class Schedule {
    let ptr: OpaquePointer
    private var prepared = false

    /// configJSON: a diffusers scheduler_config.json (nil: SD-1.5's).
    public init(sampler: Sampler = .default, configJSON: String? = nil) throws {
        var out: OpaquePointer?
        let kind = sf_sampler(rawValue: sampler.rawValue)
        if let json = configJSON {
            try check(sf_schedule_create(kind, json, nil, &out))
        } else {
            try check(sf_schedule_create(kind, nil, nil, &out))
        }
        ptr = out!
    }

    deinit { sf_schedule_destroy(ptr) }

    public func setSteps(_ steps: Int, latentCount: Int) throws {
        try check(sf_schedule_set_steps(ptr, Int32(steps), latentCount))
        prepared = true
    }

    public var evaluations: Int { Int(sf_schedule_evaluations(ptr)) }
    public func timestep(_ i: Int) -> Double { sf_schedule_timestep(ptr, Int32(i)) }
    public var initNoiseSigma: Double { sf_schedule_init_noise_sigma(ptr) }
    public func stepNeedsNoise(_ i: Int) -> Bool { sf_schedule_step_needs_noise(ptr, Int32(i)) != 0 }

    public func scaleInput(_ i: Int, _ x: [Float]) throws -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_schedule_scale_input(ptr, Int32(i), x, $0.baseAddress, $0.count))
        }
        return out
    }

    /// sample <- the sampler's update for evaluation i. One count crosses for the three arrays,
    /// so their sizes are checked here.
    public func step(_ i: Int, modelOutput: [Float], sample: inout [Float], noise: [Float]? = nil) throws {
        let n = sample.count
        guard modelOutput.count == n, (noise?.count ?? n) == n else {
            throw SnapFusionError.invalidArgument("step: model output \(modelOutput.count) and noise \(noise?.count ?? n) values for \(n)")
        }
        try sample.withUnsafeMutableBufferPointer { s in
            if let noise = noise {
                try check(sf_schedule_step(ptr, Int32(i), modelOutput, s.baseAddress, n, noise))
            } else {
                try check(sf_schedule_step(ptr, Int32(i), modelOutput, s.baseAddress, n, nil))
            }
        }
    }

    /// img2img from the building blocks: after setSteps, the evaluation the loop starts at for
    /// strength in [0, 1] (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps); start from
    /// addNoise(begin, original: imageLatents, noise:) and step i = begin, begin + 1, ...
    public func beginIndex(strength: Double) throws -> Int {
        guard prepared else {
            throw SnapFusionError(code: .badState, status: SF_ERR_BAD_STATE.rawValue, message: "beginIndex: call setSteps first")
        }
        let begin = sf_schedule_begin_index(ptr, strength)
        if begin < 0 { throw SnapFusionError.invalidArgument(String(cString: sf_last_error())) }
        return Int(begin)
    }

    /// The scheduler's add_noise(original, noise, timestep of evaluation i); for DDIM
    /// sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise, t = timestep(i), acp = alphasCumprod.
    public func addNoise(_ i: Int, original: [Float], noise: [Float]) throws -> [Float] {
        guard noise.count == original.count else {
            throw SnapFusionError.invalidArgument("addNoise: \(noise.count) noise values for \(original.count)")
        }
        var out = [Float](repeating: 0, count: original.count)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_schedule_add_noise(ptr, Int32(i), original, noise, $0.baseAddress, $0.count))
        }
        return out
    }

    /// A table of the training schedule (num_train_timesteps float32 values).
    public func table(_ table: ScheduleTable) throws -> [Float] {
        let which = sf_schedule_table(rawValue: table.rawValue)
        var count = 0
        try check(sf_schedule_get_table(ptr, which, nil, 0, &count))
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_schedule_get_table(ptr, which, $0.baseAddress, $0.count, &count))
        }
        return out
    }

    public var betas: [Float] { get throws { try table(.betas) } }
    public var alphasCumprod: [Float] { get throws { try table(.alphasCumprod) } }
    /// 1 with set_alpha_to_one, else alphasCumprod[0].
    public var finalAlphaCumprod: Double { sf_schedule_final_alpha_cumprod(ptr) }
}
