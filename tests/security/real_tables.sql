-- Tables as WordPress and plugins write them, every kind of column, key, constraint, engine and option:
-- what SHOW CREATE TABLE makes of them must pass both table-definition readers unchanged.
CREATE TABLE wp_options (
  option_id bigint(20) unsigned NOT NULL auto_increment,
  option_name varchar(191) NOT NULL default '',
  option_value longtext NOT NULL,
  autoload varchar(20) NOT NULL default 'yes',
  PRIMARY KEY  (option_id),
  UNIQUE KEY option_name (option_name),
  KEY autoload (autoload)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
CREATE TABLE wp_kitchen_sink (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  price decimal(10,2) NOT NULL DEFAULT -1.50,
  ratio double DEFAULT 1e-3,
  flag bit(1) NOT NULL DEFAULT b'1',
  kind enum('a','b''c','d\\e') DEFAULT 'a' COMMENT 'it''s -- not /* a */ comment; DROP TABLE wp_options; \\',
  tags set('x','y') DEFAULT 'x,y',
  data json DEFAULT NULL,
  doubled bigint GENERATED ALWAYS AS (price * 2) VIRTUAL,
  label varchar(20) AS (concat('x-', kind)) PERSISTENT,
  created timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  day date DEFAULT (curdate() + interval 1 day),
  uid char(36) DEFAULT uuid(),
  place point NOT NULL,
  body text CHARACTER SET latin1 COLLATE latin1_german1_ci,
  secret int INVISIBLE,
  amount int CHECK (amount >= 0),
  zero int(5) unsigned zerofill,
  UNIQUE KEY kind_price (kind, price),
  FULLTEXT KEY body (body),
  SPATIAL KEY place (place),
  KEY prefix (body(100)) USING BTREE COMMENT 'idx',
  KEY descending (price DESC),
  CONSTRAINT positive CHECK (price > -100)
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci ROW_FORMAT=DYNAMIC COMMENT='a table''s comment; DROP TABLE wp_options';
CREATE TABLE wp_parent (id int PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE wp_child (id int PRIMARY KEY, parent int, CONSTRAINT fk_parent FOREIGN KEY (parent) REFERENCES wp_parent (id) ON DELETE CASCADE ON UPDATE SET NULL, CONSTRAINT child_positive CHECK (id > 0)) ENGINE=InnoDB;
CREATE TABLE wp_aria (id int PRIMARY KEY, v varchar(10)) ENGINE=Aria PAGE_CHECKSUM=1 TRANSACTIONAL=1;
CREATE TABLE wp_myisam (id int PRIMARY KEY, v text, FULLTEXT KEY v (v)) ENGINE=MyISAM PACK_KEYS=1 CHECKSUM=1 DELAY_KEY_WRITE=1 MAX_ROWS=1000 AVG_ROW_LENGTH=50;
CREATE TABLE wp_memory (id int PRIMARY KEY, v varbinary(10)) ENGINE=MEMORY;
CREATE TABLE wp_compressed (id int PRIMARY KEY) ENGINE=InnoDB ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8 STATS_PERSISTENT=0 STATS_AUTO_RECALC=0 STATS_SAMPLE_PAGES=5;
CREATE TABLE `wp_odd ``name` (`col ``q` int, `ünï` varchar(5) DEFAULT 'é') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE wp_nokey (a int, b blob) ENGINE=InnoDB;
