// swift run txt2img MODEL_DIR "a photo of a cat" out.png
import SnapFusion
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

let args = CommandLine.arguments
guard args.count >= 4 else {
    print("usage: txt2img MODEL_DIR PROMPT OUT.png")
    exit(2)
}
do {
    let pipe = try Pipeline(path: args[1])  // one thread per core
    let job = try pipe.start(GenerationOptions(prompt: args[2], steps: 8, guidanceScale: 7.5, seed: 0))
    while job.stepsDone < job.stepsTotal {
        let step = try job.step()
        print("step \(step.index)/\(step.total)")
    }
    try job.finish().save(to: args[3])
} catch let error as SnapFusionError {
    print("txt2img: \(error)")
    exit(1)
} catch {
    print("txt2img: \(error)")
    exit(1)
}
