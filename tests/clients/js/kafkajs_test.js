// kafkajs (non-flexible protocol versions only) against Eddy: admin, producer with keys,
// headers and gzip, and a consumer group that reads everything back and commits.
//
//   node kafkajs_test.js BOOTSTRAP
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

async function main() {
  const bootstrap = process.argv[2] || process.env.EDDY_BOOTSTRAP;
  const kafka = new Kafka({ clientId: 'kafkajs-e2e', brokers: [bootstrap], logLevel: logLevel.WARN });
  const topic = 'kjs-' + Math.random().toString(16).slice(2, 10);
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  if (!created) fail('createTopics returned false');
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) fail('listTopics lacks ' + topic);

  const producer = kafka.producer();
  await producer.connect();
  const n = 1000;
  const messages = [];
  for (let i = 0; i < n; i++) {
    messages.push({ key: 'k' + (i % 17), value: 'v' + i, headers: { h: 'x' + i } });
  }
  for (let i = 0; i < n; i += 100) {
    await producer.send({ topic, compression: CompressionTypes.GZIP, messages: messages.slice(i, i + 100), acks: -1 });
  }
  await producer.disconnect();

  const offsets = await admin.fetchTopicOffsets(topic);
  const total = offsets.reduce((s, p) => s + Number(p.high) - Number(p.low), 0);
  if (total !== n) fail('fetchTopicOffsets says ' + total + ' records, expected ' + n);

  const groupId = 'kjs-group-' + topic;
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Map();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out with ' + seen.size + ' records')), 60000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const v = message.value.toString();
        const h = message.headers.h.toString();
        if ('x' + v.slice(1) !== h) reject(new Error('header mismatch for ' + v));
        seen.set(v, partition);
        if (seen.size === n) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  }).catch((e) => fail(e.message));
  await consumer.disconnect();
  for (let i = 0; i < n; i++) if (!seen.has('v' + i)) fail('missing v' + i);

  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const sum = committed[0].partitions.reduce((s, p) => s + Number(p.offset), 0);
  if (sum !== n) fail('committed offsets sum to ' + sum + ', expected ' + n);

  // A restarted consumer in the same group resumes at the committed offsets: it sees only
  // records produced after the first consumer left.
  const p2 = kafka.producer();
  await p2.connect();
  await p2.send({ topic, messages: [{ value: 'late-1' }, { value: 'late-2' }, { value: 'late-3' }] });
  await p2.disconnect();
  const again = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await again.connect();
  await again.subscribe({ topic, fromBeginning: true });
  const late = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('restarted consumer got ' + JSON.stringify(late))), 60000);
    again.run({
      eachMessage: async ({ message }) => {
        late.push(message.value.toString());
        if (late.length >= 3) {
          clearTimeout(timer);
          setTimeout(resolve, 500); // give a wrongly rewound consumer time to show more
        }
      },
    }).catch(reject);
  }).catch((e) => fail(e.message));
  await again.disconnect();
  if (late.sort().join(',') !== 'late-1,late-2,late-3') fail('restarted consumer read ' + late.length + ' records: ' + late.slice(0, 5));

  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
  console.log('ok: kafkajs produced and consumed ' + n + ' records');
}

main().catch((e) => fail(e.stack || String(e)));
