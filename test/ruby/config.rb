# Sidekiq's own view of a sidekiq.yml (for the corpus test).
#   ruby config.rb PATH   prints one JSON line: what Sidekiq::CLI#parse resolved
#   (the default capsule's concurrency, queues in order, weights and mode, and
#   the timeout), or {"ok": false, "error": ...} when Sidekiq fails on the file.
require "json"
require "sidekiq/cli"

path = ARGV.fetch(0)
out =
  begin
    cli = Sidekiq::CLI.instance
    # -r: validate! wants something to require; parse does not load it.
    cli.parse(["-C", path, "-r", File.expand_path(__FILE__)])
    cap = cli.config.default_capsule
    { "ok" => true, "version" => Sidekiq::VERSION, "environment" => cli.environment,
      "concurrency" => cap.concurrency, "timeout" => cli.config[:timeout],
      "queues" => cap.queues.uniq.map(&:to_s),
      "weights" => cap.weights.to_h { |k, v| [k.to_s, v] }, "mode" => cap.mode.to_s }
  rescue Exception => e # rubocop:disable Lint/RescueException (die raises SystemExit)
    { "ok" => false, "version" => Sidekiq::VERSION, "error" => "#{e.class}: #{e.message}" }
  end
$stdout.puts JSON.generate(out)
