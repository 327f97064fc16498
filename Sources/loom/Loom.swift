import ArgumentParser

@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Loom: a large language model pipeline in Swift, from raw text to an aligned chat model.",
        subcommands: [
            PipelineCommand.self,
            ChatCommand.self,
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
            ExportCommand.self,
        ]
    )
}
