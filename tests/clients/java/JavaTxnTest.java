// Transactions with the official Java client (kafka-clients 3.9.1) against Eddy.
//
//   java -cp CLASSPATH JavaTxnTest BOOTSTRAP
//
// A transactional producer commits and aborts transactions across 2 partitions (lz4), then
// leaves one open: Admin listTransactions / describeTransactions / describeProducers must
// show it. After it commits, a second producer with the same transactional.id fences the
// first (ProducerFencedException on its commit). A read_committed consumer group then sees
// exactly the committed records, in order per partition.
import java.time.Duration;
import java.util.*;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaTxnTest {
    static final String TOPIC = "java-txn";
    static final String TID = "java-txn-producer";

    static void fail(String msg) {
        System.err.println("FAIL: " + msg);
        System.exit(1);
    }

    static KafkaProducer<String, String> producer(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, TID);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args.length > 0 ? args[0] : System.getenv("EDDY_BOOTSTRAP");
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        Map<Integer, List<String>> committed = new HashMap<>();
        committed.put(0, new ArrayList<>());
        committed.put(1, new ArrayList<>());
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(TOPIC, 2, (short) 1))).all().get();
            KafkaProducer<String, String> p = producer(bootstrap);
            for (int t = 0; t < 6; t++) {
                p.beginTransaction();
                List<String> sent = new ArrayList<>();
                for (int i = 0; i < 10; i++) {
                    String v = "t" + t + "-" + i;
                    p.send(new ProducerRecord<>(TOPIC, i % 2, null, v));
                    sent.add(v);
                }
                p.flush();
                if (t % 2 == 0) {
                    p.commitTransaction();
                    for (int i = 0; i < sent.size(); i++) committed.get(i % 2).add(sent.get(i));
                } else {
                    p.abortTransaction();
                }
            }
            p.beginTransaction();
            p.send(new ProducerRecord<>(TOPIC, 0, null, "last")).get();

            Collection<TransactionListing> listed = admin.listTransactions().all().get();
            if (listed.stream().noneMatch(l -> l.transactionalId().equals(TID)
                    && l.state() == org.apache.kafka.clients.admin.TransactionState.ONGOING)) {
                fail("listTransactions does not show the open transaction: " + listed);
            }
            TransactionDescription d = admin.describeTransactions(List.of(TID)).all().get().get(TID);
            if (d.state() != org.apache.kafka.clients.admin.TransactionState.ONGOING
                    || !d.topicPartitions().equals(Set.of(new TopicPartition(TOPIC, 0)))
                    || !d.transactionStartTimeMs().isPresent()) {
                fail("describeTransactions: " + d);
            }
            TopicPartition tp0 = new TopicPartition(TOPIC, 0);
            DescribeProducersResult.PartitionProducerState ps =
                admin.describeProducers(List.of(tp0)).all().get().get(tp0);
            if (ps.activeProducers().size() != 1
                    || ps.activeProducers().get(0).producerId() != d.producerId()
                    || !ps.activeProducers().get(0).currentTransactionStartOffset().isPresent()) {
                fail("describeProducers: " + ps);
            }
            p.commitTransaction();
            committed.get(0).add("last");

            // A second instance fences the first.
            p.beginTransaction();
            p.send(new ProducerRecord<>(TOPIC, 1, null, "zombie")).get();
            KafkaProducer<String, String> p2 = producer(bootstrap);
            try {
                p.commitTransaction();
                fail("the fenced producer committed");
            } catch (ProducerFencedException e) {
                System.out.println("fenced as expected: " + e.getMessage());
            }
            p.close(Duration.ofSeconds(5));
            p2.close();
        }

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, "java-txn-reader");
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        int want = committed.get(0).size() + committed.get(1).size();
        Map<Integer, List<String>> seen = new HashMap<>();
        seen.put(0, new ArrayList<>());
        seen.put(1, new ArrayList<>());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
            c.subscribe(List.of(TOPIC));
            long deadline = System.currentTimeMillis() + 30_000;
            int n = 0;
            while (n < want && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    seen.get(r.partition()).add(r.value());
                    n++;
                }
            }
            // Anything more (an aborted or fenced record) would show up now.
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofSeconds(1))) {
                seen.get(r.partition()).add(r.value());
            }
        }
        if (!seen.equals(committed)) {
            fail("read_committed saw " + seen + ", expected " + committed);
        }
        System.out.println("ok: " + want + " committed records, aborted and fenced ones hidden");
    }
}
