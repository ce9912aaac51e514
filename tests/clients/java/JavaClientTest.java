// The official Java client (kafka-clients 3.9.1) against Eddy.
//
//   java -cp CLASSPATH JavaClientTest BOOTSTRAP MODE   (BOOTSTRAP defaults to $EDDY_BOOTSTRAP)
//
// MODE "basic":   AdminClient createTopics/listTopics/describeTopics; an idempotent (default)
//                 producer with acks=all and lz4; a consumer with assign + seekToBeginning reads
//                 everything back in order per partition.
// MODE "group":   a consumer group subscribes, consumes and commits; a second consumer in the
//                 same group resumes at the committed offsets.
// MODE "plain":   the same as basic with enable.idempotence=false.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaClientTest {
    static void fail(String msg) {
        System.err.println("FAIL: " + msg);
        System.exit(1);
    }

    static Properties producerProps(String bootstrap, boolean idempotent) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        if (!idempotent) p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        return p;
    }

    static Properties consumerProps(String bootstrap, String group) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (group != null) c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        return c;
    }

    static void basic(String bootstrap, boolean idempotent) throws Exception {
        String topic = "java-" + UUID.randomUUID().toString().substring(0, 8);
        int n = 3000;
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS);
            Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            if (!names.contains(topic)) fail("listTopics lacks " + topic + ": " + names);
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
            if (d.partitions().size() != 3) fail("describeTopics: " + d);
        }
        Map<Integer, List<String>> sent = new HashMap<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(bootstrap, idempotent))) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) fs.add(p.send(new ProducerRecord<>(topic, "k" + (i % 31), "v" + i)));
            p.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata m = fs.get(i).get(30, TimeUnit.SECONDS);
                sent.computeIfAbsent(m.partition(), k -> new ArrayList<>()).add("v" + i + "@" + m.offset());
            }
        }
        Map<Integer, List<String>> got = new HashMap<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, null))) {
            List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1), new TopicPartition(topic, 2));
            c.assign(tps);
            c.seekToBeginning(tps);
            int count = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (count < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    got.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.value() + "@" + r.offset());
                    count++;
                }
            }
            if (count != n) fail("consumed " + count + " of " + n);
        }
        if (!got.equals(sent)) fail("consumed records differ from produced ones");
        System.out.println("ok: " + n + " records (idempotent=" + idempotent + ")");
    }

    static void group(String bootstrap) throws Exception {
        String topic = "java-grp-" + UUID.randomUUID().toString().substring(0, 8);
        String group = "jg-" + UUID.randomUUID().toString().substring(0, 8);
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
        try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(bootstrap, true))) {
            for (int i = 0; i < 200; i++) p.send(new ProducerRecord<>(topic, i % 2, null, "v" + i));
            p.flush();
        }
        int first = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, group))) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (first < 120 && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(500));
                Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
                for (ConsumerRecord<String, String> r : rs) {
                    first++;
                    commit.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1, "java"));
                    if (first == 120) break;
                }
                if (!commit.isEmpty()) c.commitSync(commit);
            }
            if (first < 120) fail("group consumer read only " + first);
        }
        int rest = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, group))) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline && first + rest < 200) {
                rest += c.poll(Duration.ofMillis(500)).count();
            }
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1)));
            for (OffsetAndMetadata om : committed.values()) {
                if (om == null || !"java".equals(om.metadata())) fail("committed offsets lost their metadata: " + committed);
            }
        }
        if (first + rest != 200) fail("resumed consumer read " + rest + " after " + first + "; expected 200 in total");
        System.out.println("ok: group resumed at committed offsets");
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args.length > 0 ? args[0] : System.getenv("EDDY_BOOTSTRAP");
        if (bootstrap == null || bootstrap.isEmpty()) fail("usage: JavaClientTest BOOTSTRAP [basic|plain|group] (or set EDDY_BOOTSTRAP)");
        String mode = args.length > 1 ? args[1] : "basic";
        switch (mode) {
            case "basic": basic(bootstrap, true); break;
            case "plain": basic(bootstrap, false); break;
            case "group": group(bootstrap); break;
            default: fail("unknown mode " + mode);
        }
        System.exit(0);
    }
}
