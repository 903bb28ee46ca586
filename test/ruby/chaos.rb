# Pushes the chaos suite's jobs with Sidekiq's own client (push_bulk).
#   ruby chaos.rb N SEED OUT   with REDIS_URL set
# N ChaosJob jobs, split 2:1 over queues "high" and "low" (weighted in the
# suite's config), each with args [i, ms] (ms: 5-60, from SEED); their jids,
# one a line, go to OUT.
require "sidekiq"

Sidekiq.logger.level = Logger::WARN
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }

n, seed, out = Integer(ARGV[0]), Integer(ARGV[1]), ARGV[2]
rng = Random.new(seed)
args = (0...n).map { |i| [i, 5 + rng.rand(56)] }
jids = []
args.each_slice(1000).with_index do |slice, k|
  queue = k % 3 == 2 ? "low" : "high"
  jids.concat(Sidekiq::Client.push_bulk("class" => "ChaosJob", "queue" => queue, "args" => slice))
end
abort "push_bulk returned #{jids.size} jids for #{n} jobs" unless jids.size == n && jids.all?
File.write(out, jids.join("\n") + "\n")
