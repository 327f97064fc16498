import ArgumentParser
import Foundation

@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Loom: a large language model pipeline in Swift, from raw text to an aligned chat model.",
        subcommands: [
            PipelineCommand.self,
            ChatCommand.self,
            ServeCommand.self,
            BenchCommand.self,
            PretrainCommand.self,
            SFTCommand.self,
            PPOCommand.self,
            RewardCommand.self,
            GenerateCommand.self,
            EvalCommand.self,
            PrepareCommand.self,
            TokenizeCommand.self,
            TasksCommand.self,
            DPOCommand.self,
            GRPOCommand.self,
            ImportCommand.self,
            QuantizeCommand.self,
            ExportCommand.self,
            MergeCommand.self,
        ]
    )

    /// Runs the command with `SIGPIPE` ignored, so writing to a closed pipe is an `EPIPE`
    /// error the command reports (results) or drops (progress lines), not a silent kill.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
